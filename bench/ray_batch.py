"""A batch on Ray with one and two engine workers against the local loop, in the same run: photos/s.

The tiny model on CPU (cost, not quality), a folder of astronaut crops, one request. The local loop
uses an engine already loaded; each Ray run includes what a real job pays: Ray Data's start, the
actors' start and their model load. Every run must write the local loop's bytes, and says so.
On a GPU cluster the workers take one GPU each, and the per-photo cost dwarfs the start.

    python bench/ray_batch.py [--photos 12] [--size 256] [--steps 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # steadiest on a busy box; each Ray actor gets 1 thread too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="4 photos of 128 px, 2 steps: a smoke run for CI")
    args = parser.parse_args()
    count, size, steps = (4, 128, 2) if args.quick else (args.photos, args.size, args.steps)

    import ray
    from PIL import Image
    from skimage import data

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.cluster import LOCAL, connect
    from faceswap_core.cluster.data import RayExecutor
    from faceswap_core.engine import Engine
    from faceswap_core.jobs.batch import LocalExecutor, run_batch
    from faceswap_core.models import save_tiny_model
    from faceswap_core.requests import SwapRequest
    from faceswap_core.settings import ModelSpec, SwapSettings

    quiet_libraries()
    astronaut = Image.fromarray(data.astronaut())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        photos = root / "photos"
        photos.mkdir()
        for i in range(count):
            shift = 4 * (i % 8)
            astronaut.crop((100 + shift, 0, 403, 301 - shift)).resize((size, size)).save(photos / f"{i:03d}.png")
        model = ModelSpec(str(save_tiny_model(root / "tiny")), device="cpu")
        request = SwapRequest(str(photos), settings=SwapSettings(steps=steps, seed=1))
        engine = Engine(model, lora_dir=root / "loras")
        engine.load()
        runs: dict[str, float] = {}
        started = time.perf_counter()
        run_batch(photos, root / "local loop", request, LocalExecutor(engine))
        runs["local loop"] = time.perf_counter() - started
        # 2 CPUs: the two-worker run has one core per actor, as CI's machine has
        connect(LOCAL, num_cpus=2, object_store_memory=200 * 1024**2, log_to_driver=False)
        try:
            for workers in (1, 2):
                name = f"ray, {workers} worker{'s' * (workers > 1)}"
                started = time.perf_counter()
                run_batch(photos, root / name, request, RayExecutor(model, str(root / "loras"), workers=workers))
                runs[name] = time.perf_counter() - started
        finally:
            ray.shutdown()
        local = sorted((root / "local loop").glob("*.png"))
        same = all((root / name / path.name).read_bytes() == path.read_bytes() for name in runs for path in local)
    print(f"{count} photos of {size} px, {steps} steps at strength 0.5, tiny model on CPU")
    for name, seconds in runs.items():
        ratio = runs["local loop"] / seconds
        print(f"{name:16s} {seconds:7.2f} s  {count / seconds:6.3f} photos/s  throughput ratio vs local {ratio:.2f}")
    print(f"same bytes as the local loop: {same}")
    if not same:
        raise SystemExit("Ray wrote other bytes than the local loop")


if __name__ == "__main__":
    main()
