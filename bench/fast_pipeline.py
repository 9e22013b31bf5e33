"""Fast mode against the default swap on one pipeline: UNet evaluations and wall time (goal: <= 1/7 evaluations).

The tiny model on CPU (its output is noise: this measures cost, not quality). The default call is
the quality swap (30 steps, strength 0.5, guidance 7: 15 steps on a CFG batch of two); the fast
call goes through faceswap_core.fast (tiny few-step LoRA active, LCMScheduler, guidance 1, the
steps planned for the strength). Runs alternate on the same pipeline, as the engine would switch;
best (minimum) times are compared, as timeit does, since load from other processes only adds time.

    python bench/fast_pipeline.py [--strength 0.5] [--repeats 7] [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats: a smoke run for CI")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy box)")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats

    import torch
    from PIL import Image
    from skimage import data

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.fast import (
        count_unet_evaluations,
        fast_mode_for,
        load_fast_lora,
        make_fast_scheduler,
        plan_fast_steps,
        save_tiny_fast_lora,
        scheduler_swapped,
    )
    from faceswap_core.models import load_inpaint_pipeline, save_tiny_model
    from faceswap_core.settings import SwapSettings

    quiet_libraries()
    torch.set_num_threads(args.threads)
    settings = SwapSettings(strength=args.strength, seed=0)
    crop = Image.fromarray(data.astronaut()).crop((128, 0, 384, 256)).resize((64, 64))
    mask = Image.new("L", crop.size, 0)
    mask.paste(255, (16, 12, 48, 52))

    with tempfile.TemporaryDirectory() as folder:
        model = save_tiny_model(Path(folder) / "tiny")
        pipeline = load_inpaint_pipeline(str(model), device="cpu")
        mode = fast_mode_for(str(save_tiny_fast_lora(Path(folder) / "fast", model)))
        adapter = load_fast_lora(pipeline, mode)
        plan = plan_fast_steps(mode, settings.strength)

        def call(steps: int, guidance: float) -> None:
            with torch.inference_mode():
                pipeline(
                    prompt=settings.prompt,
                    negative_prompt=settings.negative_prompt,
                    image=crop,
                    mask_image=mask,
                    height=crop.height,
                    width=crop.width,
                    strength=settings.strength,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=torch.Generator("cpu").manual_seed(0),
                )

        def default() -> None:
            pipeline.disable_lora()
            call(settings.steps, settings.guidance)

        def fast() -> None:
            pipeline.enable_lora()
            pipeline.set_adapters([adapter], adapter_weights=[mode.weight])
            with scheduler_swapped(pipeline, make_fast_scheduler(mode, pipeline.scheduler.config)):
                call(plan.num_inference_steps, plan.guidance)

        def fast_lora_off() -> None:  # the same schedule without the LoRA: what the unfused adapter costs
            pipeline.disable_lora()
            with scheduler_swapped(pipeline, make_fast_scheduler(mode, pipeline.scheduler.config)):
                call(plan.num_inference_steps, plan.guidance)

        cases = (("default", default), ("fast", fast), ("fast, LoRA off", fast_lora_off))
        runs: dict[str, Any] = {}
        for name, run in cases:  # warm-up, and the count of what ran
            with count_unet_evaluations(pipeline) as counted:
                run()
            runs[name] = counted
        timings: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _ in range(repeats):
            for name, run in cases:
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)

    best = {name: min(values) for name, values in timings.items()}
    print(f"tiny model (CPU), 64px crop, strength {settings.strength:g}, fast LoRA {mode.name}, {repeats} repeats")
    for name, run in runs.items():
        print(
            f"  {name:14s} {run.scheduler:22s} steps run {run.calls:3d}   UNet evaluations {run.evaluations:3d}   "
            f"best {best[name] * 1000:8.1f} ms   median {statistics.median(timings[name]) * 1000:8.1f} ms"
        )
    evaluations = runs["fast"].evaluations / runs["default"].evaluations
    print(f"UNet evaluations fast/default: {evaluations:.3f} (goal <= {1 / 7:.3f})")
    print(f"wall time fast/default: {best['fast'] / best['default']:.3f} best-of-{repeats}")
    lora_share = (best["fast"] - best["fast, LoRA off"]) / best["fast"]
    print(f"the unfused few-step LoRA is {lora_share:.0%} of the fast call's time")


if __name__ == "__main__":
    main()
