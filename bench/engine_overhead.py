"""Overhead of Engine.swap over a bare diffusers pipeline call, same tiny model and parameters (goal <= 1.10).

The bare call gets the crop the engine would feed the model; the engine call does everything a user
request does (load the image, normalise the mask, crop, resize, LoRA state, inference, colour match,
paste back). Runs alternate, and the best (minimum) times are compared, as timeit does: on a shared
CPU, load from other processes only ever adds time. The median of the per-round ratios is printed too.
Face detection (automatic masks) is timed separately: it is a fixed CPU cost that the tiny model's
sub-second inference would exaggerate.

    python bench/engine_overhead.py [--steps 20] [--strength 0.5] [--repeats 9] [--threads 1] [--quick]

``--quick`` (CI smoke run: 2 steps, 1 repeat) checks that the script runs; its numbers mean little.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy box)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2 steps, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 2, 1

    import torch
    from bare_pipeline import bare_inpaint, engine_crop
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image
    from skimage import data

    from faceswap_core.engine import Engine
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.masks import face_mask
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings

    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    photo = Image.fromarray(data.astronaut())
    mask = face_mask(photo.size, find_face(photo))
    settings = SwapSettings(steps=args.steps, strength=args.strength, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(ModelSpec(str(save_tiny_model(Path(folder) / "tiny")), device="cpu"))
        pipeline = engine.load()
        crop, crop_mask = engine_crop(engine, photo, mask)

        def bare() -> None:
            bare_inpaint(pipeline, crop, crop_mask, settings)

        def swap() -> None:
            engine.swap(photo, mask=mask, settings=settings)

        def auto_mask_swap() -> None:
            engine.swap(photo, settings=settings)

        timings: dict[str, list[float]] = {"bare": [], "engine": [], "engine+detect": []}
        for run in (bare, swap, auto_mask_swap):  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in (("bare", bare), ("engine", swap), ("engine+detect", auto_mask_swap)):
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)

    best = {name: min(values) for name, values in timings.items()}
    paired = statistics.median(e / b for e, b in zip(timings["engine"], timings["bare"], strict=True))
    crop_side = crop.width
    print(
        f"tiny model, {photo.width}x{photo.height}, {crop_side}px crop, {args.steps} steps, strength {args.strength:g}"
    )
    for name, values in timings.items():
        print(f"  {name:14s} best {best[name] * 1000:8.1f} ms   median {statistics.median(values) * 1000:8.1f} ms")
    print(f"overhead ratio engine/bare: {best['engine'] / best['bare']:.3f} best-of-{args.repeats}, ", end="")
    print(f"{paired:.3f} median of paired rounds  (goal <= 1.10)")
    print(f"automatic mask (detection + landmarks) adds {(best['engine+detect'] - best['engine']) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
