"""One swap at 1024 px on full-size SDXL with random weights: engine vs bare pipeline, time and peak VRAM.

No download: the UNet, VAE and both text encoders are built from SDXL base 1.0's configurations
(copied below) with random fp16 weights, so the cost is the real model's cost; the tokenizer is the
small local one (token ids only select embedding rows, which does not change the timing).
Without a CUDA GPU it says so and exits 0.

    python bench/gpu_swap.py [--steps 30] [--strength 0.5] [--repeats 3] [--low-vram] [--quick]

``--quick`` (CI smoke run) takes 2 steps and 1 repeat. Without CUDA it checks what a CPU can: the
configurations below still build SDXL (on the meta device, so no memory is used, with SDXL's exact
parameter counts), and the measurement runs end to end with the tiny random model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# stabilityai/stable-diffusion-xl-base-1.0, unet/config.json (non-default keys)
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
    "upcast_attention": False,
}
# vae/config.json; force_upcast off as with the fp16-fix VAE the engine is meant to run with in fp16
SDXL_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": False,
}
# text_encoder/config.json (CLIP ViT-L/14) and text_encoder_2/config.json (OpenCLIP ViT-bigG/14)
SDXL_TEXT_ENCODER = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
SDXL_TEXT_ENCODER_2 = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
# Parameter counts of the real SDXL base 1.0 components: the configurations above must rebuild them.
SDXL_PARAMETERS = {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}
SDXL_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}


def build_sdxl(device: Any, dtype: Any) -> Any:
    """The SDXL inpainting pipeline with random weights, built directly on the GPU."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from faceswap_core.models import tiny_tokenizer

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = tiny_tokenizer(Path(scratch))
    common = {
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        "layer_norm_eps": 1e-05,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET).to(dtype)
        vae = AutoencoderKL(**SDXL_VAE).to(dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SDXL_TEXT_ENCODER, **common)).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_ENCODER_2, **common)).to(dtype)
    pipeline = StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def check_configs() -> bool:
    """Build SDXL on the meta device (no memory, no weights) and compare its size with the real model's."""
    import torch

    pipeline = build_sdxl(torch.device("meta"), torch.float16)
    found = {name: sum(p.numel() for p in getattr(pipeline, name).parameters()) for name in SDXL_PARAMETERS}
    for name, count in found.items():
        print(f"  {name:15s} {count / 1e6:9.1f} M parameters (SDXL base 1.0: {SDXL_PARAMETERS[name] / 1e6:.1f} M)")
    return found == SDXL_PARAMETERS


def measure(run: Any, device: Any, repeats: int) -> tuple[list[float], int | None]:
    """Seconds of ``repeats`` runs after a warm-up, and the peak VRAM they allocated (None on a CPU)."""
    import torch

    cuda = device.type == "cuda"
    run()  # warm-up: kernels, allocator
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
    return times, torch.cuda.max_memory_allocated(device) if cuda else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--low-vram", action="store_true", help="model CPU offload, as the engine's --low-vram")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2 steps, 1 repeat; CPU checks without CUDA")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 2, 1

    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    if not cuda and not args.quick:
        print("gpu_swap: no CUDA GPU visible; this benchmark needs one (nothing measured; --quick checks the CPU part)")
        return 0

    from bare_pipeline import bare_inpaint, engine_crop
    from PIL import Image
    from skimage import data

    from faceswap_core.engine import Engine
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.masks import face_mask
    from faceswap_core.fast import save_tiny_fast_lora
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings

    with tempfile.TemporaryDirectory() as scratch:
        if cuda:
            device = torch.device("cuda")
            started = time.perf_counter()
            pipeline = build_sdxl(device, torch.float16)
            if args.low_vram:
                pipeline.to("cpu")
                pipeline.enable_model_cpu_offload(device=device)
            print(f"built random SDXL in {time.perf_counter() - started:.1f} s on {torch.cuda.get_device_name(device)}")
            engine = Engine.from_pipeline(pipeline, base_model="random SDXL (full size, fp16)")
            model = f"SDXL fp16 ({'low-VRAM offload' if args.low_vram else 'all on GPU'})"
        else:
            print("gpu_swap --quick: no CUDA GPU; checking the SDXL configurations and the measurement on the CPU")
            if not check_configs():
                print("gpu_swap: the configurations no longer build SDXL base 1.0", file=sys.stderr)
                return 1
            device = torch.device("cpu")
            tiny = save_tiny_model(Path(scratch) / "tiny")
            engine = Engine(ModelSpec(str(tiny), device="cpu"))
            pipeline = engine.load()
            model = "tiny random SDXL on the CPU"
        # Fast mode: a random few-step LoRA of the same shapes (LCM-LoRA's targets), built from the UNet's config.
        fast_lora = save_tiny_fast_lora(Path(scratch) / "fast-lora", pipeline).parent
        engine.model = replace(engine.model, fast_lora=str(fast_lora))
        photo = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.LANCZOS)
        mask = face_mask(photo.size, find_face(photo))
        settings = SwapSettings(steps=args.steps, strength=args.strength, seed=0, color_match=True)
        crop, crop_mask = engine_crop(engine, photo, mask)

        def bare() -> None:
            bare_inpaint(pipeline, crop, crop_mask, settings)

        def swap() -> None:
            engine.swap(photo, mask=mask, settings=settings)

        def fast_swap() -> None:
            engine.swap(photo, mask=mask, settings=replace(settings, fast=True))

        results: dict[str, tuple[list[float], int | None]] = {}
        for name, run in (("bare pipeline", bare), ("engine swap", swap), ("fast swap", fast_swap)):
            results[name] = measure(run, device, args.repeats)
            engine.release_gpu()

    crop_side = crop.width
    print(f"{model}, {crop_side}px crop of a 1024px photo, {args.steps} steps, strength {args.strength:g}")
    for name, (times, peak) in results.items():
        vram = f"{peak / 2**30:5.2f} GiB" if peak is not None else "n/a (CPU)"
        print(f"  {name:14s} median {statistics.median(times):6.2f} s   peak VRAM {vram}")
    ratio = statistics.median(results["engine swap"][0]) / statistics.median(results["bare pipeline"][0])
    print(f"engine/bare time ratio: {ratio:.3f}")
    fast = statistics.median(results["fast swap"][0])
    print(f"fast/engine time ratio: {fast / statistics.median(results['engine swap'][0]):.3f} (fast swap {fast:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
