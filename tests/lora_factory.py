"""Make real LoRA files for tests, the way diffusers' trainers save them, with non-zero random weights.

A freshly initialised LoRA has B = 0 and changes nothing; ``init_lora_weights=False`` makes both
matrices random so that loading the LoRA visibly changes the tiny model's output.
"""

from __future__ import annotations

import os
from pathlib import Path

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def make_test_lora(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int = 0, rank: int = 4) -> Path:
    """Write ``out_dir/pytorch_lora_weights.safetensors`` for the UNet of ``model_dir``; returns the file."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(model_dir) / "unet")
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=LORA_TARGETS))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionXLPipeline.save_lora_weights(out, unet_lora_layers=layers, safe_serialization=True)
    return out / "pytorch_lora_weights.safetensors"
