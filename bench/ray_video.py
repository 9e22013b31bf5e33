"""A clip on Ray with one and two frame workers against the local loop, in the same run: frames/s.

The tiny model on CPU (cost, not quality), a zoom over the astronaut's face, one seed. Every run tracks
on the driver and blends and encodes there; the Ray runs send the repaints to engine actors. The local
loop uses an engine already loaded; each Ray run includes what a real job pays: the actors' start and
their model load. So two figures: the whole clip, and the frames after the first result (steady state,
where the workers' number shows). Every run must write the local loop's frames, and says so.

    python bench/ray_video.py [--frames 24] [--size 192] [--steps 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips the tests use
os.environ.setdefault("OMP_NUM_THREADS", "1")  # steadiest on a busy box; each Ray actor gets 1 thread too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="6 frames of 128 px, 2 steps: a smoke run for CI")
    args = parser.parse_args()
    count, size, steps = (6, 128, 2) if args.quick else (args.frames, args.size, args.steps)

    import ray
    from PIL import Image
    from skimage import data
    from video_factory import around_face, camera_move, write_clip

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.cluster import LOCAL, connect
    from faceswap_core.cluster.data import RayFrames
    from faceswap_core.engine import Engine
    from faceswap_core.media import probe, read_frames
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings
    from faceswap_core.video import VideoSettings, swap_clip

    quiet_libraries()
    head = around_face(Image.fromarray(data.astronaut()), 1.3)
    settings = VideoSettings(swap=SwapSettings(steps=steps, strength=0.5, seed=1))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = write_clip(root / "clip.mp4", camera_move(head, count, size=size, kind="zoom"))
        model = ModelSpec(str(save_tiny_model(root / "tiny")), device="cpu")
        engine = Engine(model, lora_dir=root / "loras")
        engine.load()
        runs: dict[str, tuple[float, float]] = {}  # name -> (whole clip s, s after the first frame finished)

        def timed(name: str, frames: RayFrames | None) -> None:
            first: list[float] = []

            def note(stage: str, done: int, total: int, left: float | None) -> None:
                if stage == "swapping" and not first:
                    first.append(time.perf_counter())

            started = time.perf_counter()
            out, job = root / f"{name}.mkv", root / name
            swap_clip(engine, clip, out, settings, job_folder=job, progress=note, frames=frames)
            ended = time.perf_counter()
            runs[name] = (ended - started, ended - first[0])

        timed("local loop", None)
        # 2 CPUs: the two-worker run has one core per actor, as CI's machine has
        connect(LOCAL, num_cpus=2, object_store_memory=200 * 1024**2, log_to_driver=False)
        try:
            for workers in (1, 2):
                frames = RayFrames(model, str(root / "loras"), workers=workers)
                timed(f"ray, {workers} worker{'s' * (workers > 1)}", frames)
        finally:
            ray.shutdown()
        local = [frame.pixels.tobytes() for frame in read_frames(probe(root / "local loop.mkv"))]
        same = all(
            [frame.pixels.tobytes() for frame in read_frames(probe(root / f"{name}.mkv"))] == local for name in runs
        )
    print(f"a {count}-frame clip of {size} px, {steps} steps at strength 0.5, tiny model on CPU")
    base_whole, base_steady = runs["local loop"]
    for name, (whole, steady) in runs.items():
        print(
            f"{name:16s} whole clip {whole:7.2f} s  {count / whole:6.3f} frames/s  "
            f"throughput ratio vs local {base_whole / whole:.2f} | after the first frame "
            f"{(count - 1) / steady:6.3f} frames/s  ratio vs local {base_steady / steady:.2f}"
        )
    print(f"same frames as the local loop: {same}")
    if not same:
        raise SystemExit("Ray wrote other frames than the local loop")


if __name__ == "__main__":
    main()
