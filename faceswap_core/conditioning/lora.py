"""The person's LoRA: an adapter at its weight, nothing else in the call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faceswap_core.conditioning.base import Contribution
from faceswap_core.errors import SettingsError

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.loras import LoraInfo
    from faceswap_core.settings import SwapSettings


class LoraContribution(Contribution):
    def __init__(self, info: LoraInfo, weight: float) -> None:
        self.adapters = ((info, weight),)


class LoraConditioning:
    """``settings.lora`` at ``settings.lora_scale``; a missing or unsafe LoRA fails here, before any GPU work."""

    name = "lora"

    def validate(self, options: Any) -> None:
        raise SettingsError("the LoRA is chosen with the person (or settings.lora), not with extras")

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution | None:
        if not settings.lora:
            return None
        return LoraContribution(engine.loras.resolve(settings.lora), settings.lora_scale)
