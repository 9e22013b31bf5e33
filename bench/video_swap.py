"""Throughput of a clip swap on the tiny model: frames per second and where the time goes.

The same frames go through the video path (decode, detect, track, repaint through ``swap_frame``,
encode) and through the photo path looped over them (``Engine.swap`` per decoded frame: detection
and repaint, no tracking, no encoding), in the same run; the ratio says what tracking, the job folder
and encoding cost (or save, with ``--detect-every``) on top of repainting. On the tiny model the
repaint is cheap, so the shares of decode/detect/encode are far larger than on SDXL (README: Video).

    python bench/video_swap.py [--frames 24] [--size 256] [--steps 4] [--detect-every 1] [--quick]

``--quick`` (CI smoke run: 6 frames at 160 px, 2 steps) checks that the script runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips the tests use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--detect-every", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 6 frames at 160 px, 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size, args.steps = 6, 160, 2

    import numpy as np
    import torch
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image
    from skimage import data
    from video_factory import around_face, camera_move, write_clip

    from faceswap_core.engine import Engine
    from faceswap_core.media import probe, read_frames
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings
    from faceswap_core.video import VideoSettings, swap_clip

    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(1)
    settings = SwapSettings(steps=args.steps, strength=0.6, seed=0)
    head = around_face(Image.fromarray(data.astronaut()), 1.3)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        engine = Engine(ModelSpec(str(save_tiny_model(work / "tiny")), device="cpu"))
        clip = write_clip(work / "clip.mp4", camera_move(head, args.frames, size=args.size, kind="zoom"))
        engine.swap(next(read_frames(probe(clip))).pixels, settings=settings)  # warm-up: load the model

        started = time.perf_counter()
        job = swap_clip(
            engine,
            clip,
            work / "out.mp4",
            VideoSettings(swap=settings, detect_every=args.detect_every),
            job_folder=work / "job",
        )
        video_s = time.perf_counter() - started

        started = time.perf_counter()
        for frame in read_frames(probe(clip)):
            np.asarray(engine.swap(frame.pixels, settings=settings).image)
        photo_s = time.perf_counter() - started

    frames = job.state.frames
    parts = {name: job.timings.get(f"{name}_s", 0.0) for name in ("decode", "detect", "track", "repaint", "encode")}
    parts["repaint"] -= job.timings["flow_s"]  # shown on its own
    parts["flow"] = job.timings["flow_s"]
    parts["track"] -= job.timings["describe_s"]  # descriptors: only where box overlap cannot tell faces apart
    parts["describe"] = job.timings["describe_s"]
    print("describe: the face descriptors that keep tracks apart where boxes cannot (the photo path has none)")
    print(f"frames {frames} at {args.size} px, {args.steps} steps, detect every {args.detect_every}")
    print(f"video path: {frames / video_s:.2f} fps ({video_s / frames * 1000:.0f} ms/frame)")
    print(f"photo path looped: {frames / photo_s:.2f} fps ({photo_s / frames * 1000:.0f} ms/frame)")
    for name, seconds in parts.items():
        print(f"  {name:>8}: {seconds / video_s:6.1%}")
    print(f"  {'other':>8}: {1 - sum(parts.values()) / video_s:6.1%}  (probing, job folder, patches)")
    print(f"throughput ratio video/photo loop: {photo_s / video_s:.3f}")


if __name__ == "__main__":
    main()
