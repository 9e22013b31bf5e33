"""The baseline both swap benchmarks measure the engine against: one plain diffusers call on the crop."""

from __future__ import annotations

from typing import Any

from PIL import Image

from faceswap_core.engine import Engine, FaceTarget
from faceswap_core.regions import cut
from faceswap_core.settings import SwapSettings


def engine_crop(engine: Engine, photo: Image.Image, mask: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The crop and crop mask the engine feeds the model for ``mask`` (through its own region code)."""
    prepared = engine.prepare(photo, [FaceTarget(SwapSettings(), None, mask)])
    return cut(prepared.image, prepared.regions[0], engine.native_resolution)


def bare_inpaint(pipeline: Any, crop: Image.Image, crop_mask: Image.Image, settings: SwapSettings) -> None:
    """What a notebook would run: the same crop, mask and parameters, no LoRA switching or blending."""
    import torch

    size = crop.width
    with torch.inference_mode():
        pipeline(
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt,
            image=crop,
            mask_image=crop_mask,
            height=size,
            width=size,
            strength=settings.strength,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=torch.Generator("cpu").manual_seed(settings.seed or 0),
        )
