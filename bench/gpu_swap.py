"""One swap at 1024 px on full-size SDXL with random weights: engine vs bare pipeline, time and peak VRAM.

No download: the library's ``build_sdxl_pipeline`` makes SDXL base 1.0 with random fp16 weights,
so the cost is the real model's cost. Without a CUDA GPU it says so and exits 0.

    python bench/gpu_swap.py [--steps 30] [--strength 0.5] [--repeats 3] [--low-vram] [--quick]

``--quick`` (CI smoke run) takes 2 steps and 1 repeat. Without CUDA the measurement runs end to end
with the tiny random model; tests/test_models.py checks that the full-size build is SDXL's size.
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
    from faceswap_core.models import build_sdxl_pipeline, save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings

    with tempfile.TemporaryDirectory() as scratch:
        if cuda:
            device = torch.device("cuda")
            started = time.perf_counter()
            pipeline = build_sdxl_pipeline(vocab_dir=Path(scratch) / "vocab", device=device, dtype=torch.float16)
            if args.low_vram:
                pipeline.to("cpu")
                pipeline.enable_model_cpu_offload(device=device)
            print(f"built random SDXL in {time.perf_counter() - started:.1f} s on {torch.cuda.get_device_name(device)}")
            engine = Engine.from_pipeline(pipeline, base_model="random SDXL (full size, fp16)")
            model = f"SDXL fp16 ({'low-VRAM offload' if args.low_vram else 'all on GPU'})"
        else:
            print("gpu_swap --quick: no CUDA GPU; checking the measurement on the CPU with the tiny model")
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
