"""Fast mode against the default swap through the engine: UNet evaluations and wall time (goal: <= 1/7).

The tiny model on CPU (its output is noise: this measures cost, not quality), with a tiny few-step
LoRA. The default swap is 30 steps at strength 0.5 with guidance 7 (15 steps on a CFG batch of two);
the fast swap is the same request with ``fast=True``. Both go through ``Engine.swap`` on the same
engine, alternating, as the app switches; the evaluation counts come from each result's record, and
the best (minimum) times are compared, as timeit does, since load from other processes only adds.

    python bench/fast_swap.py [--strength 0.5] [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # steadiest on a busy box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats: a smoke run for CI")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats

    from PIL import Image
    from skimage import data

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.engine import Engine
    from faceswap_core.fast import save_tiny_fast_lora
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings

    quiet_libraries()
    photo = Image.fromarray(data.astronaut())
    quality = SwapSettings(steps=30, strength=args.strength, guidance=7.0, seed=1)
    fast = replace(quality, fast=True)
    with tempfile.TemporaryDirectory() as folder:
        model = save_tiny_model(Path(folder) / "tiny")
        fast_lora = save_tiny_fast_lora(Path(folder) / "fast-lora", model).parent
        engine = Engine(ModelSpec(str(model), device="cpu", fast_lora=str(fast_lora)), lora_dir=folder)
        engine.swap(photo, settings=quality)  # warm-up: model load, detector, first-call costs
        engine.swap(photo, settings=fast)  # and the few-step LoRA's load
        times: dict[str, list[float]] = {"default": [], "fast": []}
        records = {}
        for _ in range(repeats):
            for name, settings in (("default", quality), ("fast", fast)):
                started = time.perf_counter()
                result = engine.swap(photo, settings=settings)
                times[name].append(time.perf_counter() - started)
                records[name] = result.record["faces"][0]
    for name in ("default", "fast"):
        face = records[name]
        print(
            f"{name:8s} {face['scheduler']:24s} steps run {face['steps_run']:2d}  "
            f"UNet evaluations {face['unet_evaluations']:2d}  best {min(times[name]) * 1000:7.1f} ms"
        )
    evaluations = records["fast"]["unet_evaluations"] / records["default"]["unet_evaluations"]
    print(f"ratio fast/default UNet evaluations {evaluations:.3f} (goal <= {1 / 7:.3f})")
    print(f"ratio fast/default wall time {min(times['fast']) / min(times['default']):.3f}")


if __name__ == "__main__":
    main()
