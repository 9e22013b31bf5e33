"""Photos of the person as an image prompt (IP-Adapter): no training, a likeness from 1-8 photos."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faceswap_core.conditioning.base import Contribution
from faceswap_core.errors import SettingsError

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.identity_adapter import IdentityAdapter, IdentityEmbeds, Reference
    from faceswap_core.settings import SwapSettings


class IdentityPrompt(Contribution):
    """The photos' embeddings at ``scale``, or neutral embeddings at scale 0 without photos.

    Once the adapter is loaded the UNet needs image embeddings on every call, so requests without
    photos get the neutral contribution; scale 0 skips the adapter's layers (the same as no adapter).
    """

    def __init__(self, adapter: IdentityAdapter, references: list[Reference] | None, scale: float) -> None:
        self.adapter, self.references, self.scale = adapter, references, scale
        self._embeds: IdentityEmbeds | None = None

    @contextmanager
    def applied(self, pipeline: Any, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        if self.references is not None:
            self._embeds = self.adapter.embeds(pipeline, self.references)
        yield self.adapter.call_kwargs(pipeline, self._embeds, scale=self.scale, guidance=call["guidance_scale"])

    def record(self) -> dict[str, Any]:
        return {} if self._embeds is None else self.adapter.record(self._embeds, self.scale)


class ImagePromptConditioning:
    """``settings.identity_photos`` at ``settings.identity_scale`` (None: 0.7 alone, 0.4 beside a LoRA).

    The photos are loaded, checked and aligned here, outside the GPU lock; the adapter itself loads
    into the pipeline with the first photos, so LoRA-only swaps never pay for it.
    """

    name = "image_prompt"

    def validate(self, options: Any) -> None:
        raise SettingsError("photos of the person are given with settings.identity_photos, not with extras")

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution | None:
        if settings.identity_photos:
            from faceswap_core.identity_adapter import default_identity_scale

            references = engine.identity.references(list(settings.identity_photos))
            scale = settings.identity_scale
            return IdentityPrompt(
                engine.identity, references, default_identity_scale(bool(settings.lora)) if scale is None else scale
            )
        if engine.loaded_identity is not None:
            return IdentityPrompt(engine.loaded_identity, None, 0.0)
        return None
