"""The baseline both swap benchmarks measure the engine against: one plain diffusers call on the crop."""

from __future__ import annotations

from typing import Any

from faceswap_core.engine import PreparedSwap
from faceswap_core.settings import SwapSettings


def bare_inpaint(pipeline: Any, prepared: PreparedSwap, settings: SwapSettings) -> None:
    """What a notebook would run: the same crop, mask and parameters, no LoRA switching or blending."""
    import torch

    size = prepared.crop.width
    with torch.inference_mode():
        pipeline(
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt,
            image=prepared.crop,
            mask_image=prepared.crop_mask,
            height=size,
            width=size,
            strength=settings.strength,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=torch.Generator("cpu").manual_seed(settings.seed or 0),
        )
