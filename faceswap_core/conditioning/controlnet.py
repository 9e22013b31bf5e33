"""Keep expression: a ControlNet on the target face's own landmarks, so strength can go high.

At strength 0.8-1.0 the inpainting model redraws the face from the prompt and the LoRA, and the
photo's pose, gaze and mouth are lost with the old pixels. A ControlNet fed the target's 68 landmarks,
drawn as an OpenPose-style face map, holds them while the identity changes.

A conditioning plug-in like the others (``settings.keep_expression`` is its weight, as ``settings.fast``
is few-step's switch); its contribution uses the two hooks a face-reading plug-in needs: ``placed``
(the face it is about, in crop pixels) and ``runner`` (the pipeline to call: the loaded inpainting
pipeline's own components with the ControlNet beside them, made once by ``from_pipe``, so no weight is
copied and the LoRAs, image prompt and few-step scheduler of the call apply to it too). Weight 0 adds
nothing and loads nothing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from faceswap_core.conditioning.base import Contribution
from faceswap_core.errors import SettingsError
from faceswap_core.settings import (
    CONTROLNET_POSE_MODE,
    DYNAMIC_STRENGTH_GAIN,
    FULL_DETAIL_FACE,
    RECOMMENDED_STRENGTH,
    RECOMMENDED_STRENGTH_KEEP_EXPRESSION,
    SEARCH_STRENGTHS,
    SEARCH_STRENGTHS_KEEP_EXPRESSION,
    STRENGTH,
)

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.regions import Region
    from faceswap_core.settings import SwapSettings

UNION_CONTROL_TYPES = 6  # xinsir's union model: openpose, depth, hed, canny, normal, segment

# iBUG-300W landmark groups drawn as open or closed lines: jaw, brows, nose bridge and base, eyes, lips
FACE_LINES: tuple[tuple[range, bool], ...] = (
    (range(0, 17), False),
    (range(17, 22), False),
    (range(22, 27), False),
    (range(27, 31), False),
    (range(31, 36), False),
    (range(36, 42), True),
    (range(42, 48), True),
    (range(48, 60), True),
    (range(60, 68), True),
)


def face_map(size: int, landmarks: np.ndarray) -> Image.Image:
    """The landmarks (in crop pixels) as white lines and dots on black: the face part of an OpenPose map."""
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(size / 256))
    for indices, closed in FACE_LINES:
        points = [tuple(map(float, landmarks[i])) for i in indices]
        draw.line([*points, points[0]] if closed else points, fill=(255, 255, 255), width=width)
    radius = max(1, round(size / 200))
    for x, y in landmarks:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255))
    return canvas


def strengths_for(keep_expression: float) -> tuple[float, tuple[float, ...]]:
    """The recommended strength and the strengths to try: higher when the ControlNet holds the expression."""
    if keep_expression > 0:
        return RECOMMENDED_STRENGTH_KEEP_EXPRESSION, SEARCH_STRENGTHS_KEEP_EXPRESSION
    return RECOMMENDED_STRENGTH, SEARCH_STRENGTHS


def crop_landmarks(region: Region, size: int) -> np.ndarray | None:
    """The region's face landmarks in the pixels of its crop resized to ``size`` (None without a face)."""
    if region.face is None:
        return None
    x0, y0, x1, _ = region.box
    return (np.asarray(region.face.landmarks, dtype=np.float64) - (x0, y0)) * (size / (x1 - x0))


def dynamic_strength(strength: float, region: Region, native: int) -> float:
    """ADetailer-style area-based strength: a face smaller than FULL_DETAIL_FACE of the crop gains up to the gain.

    The crop is resized to the native side, so what decides the detail the model must invent is how many
    source pixels the face had: ``face width / (native side * FULL_DETAIL_FACE)``, capped at 1.
    """
    if region.face is not None:
        face_side = region.face.width
    else:
        from faceswap_core.faces.masks import mask_box

        mx0, _, mx1, _ = mask_box(region.mask)
        face_side = mx1 - mx0
    coverage = min(1.0, face_side / (native * FULL_DETAIL_FACE))
    raised = strength + DYNAMIC_STRENGTH_GAIN * (1.0 - coverage)
    return round(min(STRENGTH.maximum, raised), 4)


@dataclass
class LoadedControlNet:
    """The ControlNet model and the pipeline built around it for one base pipeline."""

    source: str
    model: Any
    union: bool
    runner: Any = None
    base: Any = None  # the inpainting pipeline ``runner`` shares its components with


class FaceControl:
    """Loads the ControlNet once (on first use) and builds its inpainting pipeline from the resident one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._loaded: LoadedControlNet | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def runner(self, pipeline: Any) -> tuple[Any, bool]:
        """The ControlNet inpainting pipeline over ``pipeline``'s components, and whether it is a union model."""
        with self._lock:
            if self._loaded is None:
                self._loaded = _load(self.source, pipeline)
            loaded = self._loaded
            if loaded.runner is None or loaded.base is not pipeline:
                from diffusers import StableDiffusionXLControlNetInpaintPipeline as Plain
                from diffusers import StableDiffusionXLControlNetUnionInpaintPipeline as Union

                kind = Union if loaded.union else Plain
                loaded.runner = kind.from_pipe(pipeline, controlnet=loaded.model)
                loaded.runner.set_progress_bar_config(disable=True)
                loaded.base = pipeline
            return loaded.runner, loaded.union


def _load(source: str, pipeline: Any) -> LoadedControlNet:
    """A plain ``ControlNetModel`` or xinsir's union model (its config has ``num_control_type``)."""
    from faceswap_core.models import LOADING, _guarded

    def load() -> LoadedControlNet:
        from diffusers import ControlNetModel, ControlNetUnionModel

        config = ControlNetModel.load_config(os.path.expanduser(source))
        union = "num_control_type" in config
        kind = ControlNetUnionModel if union else ControlNetModel
        with LOADING:
            model = kind.from_pretrained(source, torch_dtype=pipeline.unet.dtype, use_safetensors=True)  # no pickles
        return LoadedControlNet(source, model.to(pipeline.unet.device), union)

    return _guarded(source, load, what="ControlNet")


class KeepExpression(Contribution):
    """One face's ControlNet contribution: its landmark map at the given weight (nothing when it has no face)."""

    def __init__(self, control: FaceControl, weight: float, landmarks: np.ndarray | None = None) -> None:
        self.control, self.weight, self.landmarks = control, weight, landmarks
        self._union = False

    def placed(self, region: Region, size: int) -> KeepExpression:
        """The same contribution for the face of ``region`` in its ``size`` x ``size`` crop."""
        return KeepExpression(self.control, self.weight, crop_landmarks(region, size))

    def runner(self, pipeline: Any) -> Any:
        if self.landmarks is None:
            return pipeline
        return self.control.runner(pipeline)[0]

    @contextmanager
    def applied(self, pipeline: Any, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        if self.landmarks is None:
            yield {}
            return
        # the arguments depend on the model's kind, known once it is loaded; the engine applies the
        # contributions before it asks for the runner, so the (cached) load happens here
        _, self._union = self.control.runner(pipeline)
        control_image = face_map(int(call["width"]), self.landmarks)
        added: dict[str, Any] = {"controlnet_conditioning_scale": self.weight}
        if self._union:
            added.update(control_image=[control_image], control_mode=[CONTROLNET_POSE_MODE])
        else:
            added["control_image"] = control_image
        yield added

    def record(self) -> dict[str, Any]:
        used = "face landmarks" if self.landmarks is not None else "none: no face under the mask"
        entry: dict[str, Any] = {"source": self.control.source, "weight": self.weight, "input": used}
        if self._union:
            entry["control_mode"] = CONTROLNET_POSE_MODE
        return {"controlnet": entry}


class KeepExpressionConditioning:
    """``settings.keep_expression`` > 0 holds the face with the engine's ControlNet (``ModelSpec.controlnet``)."""

    name = "keep_expression"

    def validate(self, options: Any) -> None:
        raise SettingsError("Keep expression is chosen with settings.keep_expression (its weight), not with extras")

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution | None:
        if settings.keep_expression <= 0:
            return None
        return KeepExpression(engine.face_control, settings.keep_expression)


def build_tiny_controlnet(
    unet_config: Mapping[str, Any], vae_config: Mapping[str, Any], *, seed: int = 0, union: bool = False
) -> Any:
    """A random ControlNet shaped like a tiny SDXL UNet, its zero convolutions made non-zero so it has an effect.

    A trained ControlNet starts from zero output layers; a test one with zeros would change nothing. With
    ``union``, a ``ControlNetUnionModel`` (xinsir's kind: one model, a control type per input), so the
    union path is tested without its 2.5 GB of weights.
    """
    import inspect

    import torch
    from diffusers import ControlNetModel, ControlNetUnionModel

    kind = ControlNetUnionModel if union else ControlNetModel
    accepted = set(inspect.signature(kind.__init__).parameters)
    config = {key: value for key, value in unet_config.items() if key in accepted}
    halvings = len(vae_config["block_out_channels"])  # the control image must come out at latent size
    config.update(in_channels=4, conditioning_embedding_out_channels=tuple(16 * 2**i for i in range(halvings)))
    if union:  # its control-type transformer works at the first block's width
        width = unet_config["block_out_channels"][0]
        config.update(num_control_type=UNION_CONTROL_TYPES, num_trans_channel=width, num_proj_channel=width)
        config.update(num_trans_head=2)
    torch.manual_seed(seed)
    model = kind(**config)
    with torch.no_grad():
        zeroed = [*model.controlnet_down_blocks, model.controlnet_mid_block]
        if union:
            zeroed.append(model.spatial_ch_projs)
        for layer in zeroed:
            layer.weight.normal_(0.0, 0.5)
    return model


def save_tiny_controlnet(
    out_dir: str | os.PathLike, model_dir: str | os.PathLike, *, seed: int = 0, union: bool = False
) -> Path:
    """Write a tiny random ControlNet (or union ControlNet) for the tiny SDXL in ``model_dir`` (tests, benchmarks)."""
    configs = [json.loads((Path(model_dir) / part / "config.json").read_text()) for part in ("unet", "vae")]
    out = Path(out_dir)
    build_tiny_controlnet(*configs, seed=seed, union=union).save_pretrained(out, safe_serialization=True)
    return out
