"""Flicker of a swapped clip: motion-compensated frame-to-frame difference inside the face mask (goal <= 0.25).

Synthetic camera moves (pan, zoom, roll) over face photos (the shared seed photos when present, else
scikit-image's astronaut) make clips whose true motion is known, so frame t-1 can be warped exactly
onto frame t and what differs inside the mask is flicker, not motion. Three clips are measured in the
same run: this method (tracks, one seed per face, smoothed masks, flow blend), the photo path run on
each frame as an independent photo with a fresh random seed (the baseline), and the input clip itself
(codec and resampling noise: the floor).

    python bench/video_flicker.py [--frames 12] [--size 192] [--steps 4] [--quick]

``--quick`` (CI smoke run: one photo, one move, 5 frames, 2 steps) checks that the script runs.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips the tests use
SEED_TARGETS = ROOT.parent / "shared" / "data" / "seed_faces" / "targets"


def flicker(frames: list[np.ndarray], masks: list[np.ndarray], matrices: list[np.ndarray]) -> float:
    """Mean absolute difference (0-255) inside each mask between frame t and frame t-1 moved onto it."""
    diffs = []
    for t in range(1, len(frames)):
        step = _compose(matrices[t], matrices[t - 1])
        height, width = masks[t].shape
        moved = cv2.warpAffine(frames[t - 1], step, (width, height), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(np.ones((height, width), np.uint8), step, (width, height)) > 0
        region = (masks[t] > 128) & inside
        if region.any():
            diffs.append(float(np.abs(frames[t].astype(np.float32) - moved.astype(np.float32))[region].mean()))
    return float(np.mean(diffs))


def _compose(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The 2x3 affine taking frame t-1's pixels to frame t's: current o inverse(previous)."""
    full = np.vstack([current, [0, 0, 1]]) @ np.linalg.inv(np.vstack([previous, [0, 0, 1]]))
    return full[:2]


def independent_swap(engine: Any, pixels: np.ndarray, settings: Any) -> np.ndarray:
    """The baseline: the photo path on one frame with a fresh seed; a frame without a face passes through."""
    from faceswap_core.errors import NoFaceError

    try:
        return np.asarray(engine.swap(pixels, settings=replace(settings, seed=secrets.randbelow(2**32))).image)
    except NoFaceError:
        return pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--strength", type=float, default=0.6)
    parser.add_argument(
        "--temporal-blend", type=float, help="share of the warped previous repaint (default: the app's)"
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke run: one photo, one move, 5 frames, 2 steps")
    args = parser.parse_args()
    moves = ["pan", "zoom", "roll"]
    if args.quick:
        args.frames, args.steps, moves = 5, 2, ["pan"]

    import torch
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image
    from skimage import data
    from video_factory import around_face, move_matrix, warp_frame, write_clip

    from faceswap_core.engine import Engine
    from faceswap_core.faces.detect import detect_faces
    from faceswap_core.faces.masks import face_mask
    from faceswap_core.media import probe, read_frames
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import VIDEO_TEMPORAL_BLEND, ModelSpec, SwapSettings
    from faceswap_core.video import VideoSettings, swap_clip

    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(1)
    photos = {"astronaut": Image.fromarray(data.astronaut())}
    if SEED_TARGETS.is_dir() and not args.quick:
        photos.update({path.stem: Image.open(path) for path in sorted(SEED_TARGETS.glob("target_*.png"))[:2]})
    blend = VIDEO_TEMPORAL_BLEND.default if args.temporal_blend is None else args.temporal_blend
    settings = SwapSettings(steps=args.steps, strength=args.strength, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        engine = Engine(ModelSpec(str(save_tiny_model(work / "tiny")), device="cpu"))
        for name, photo in photos.items():
            try:
                head = around_face(photo, 1.3)
            except Exception as err:  # noqa: BLE001 - a photo without a detectable face is skipped, said so
                print(f"{name}: skipped ({err})")
                continue
            for move in moves:
                matrices = [move_matrix(head.size, t, args.frames, args.size, move) for t in range(args.frames)]
                frames = [warp_frame(head, matrix, args.size) for matrix in matrices]
                clip = write_clip(work / f"{name}-{move}.mkv", frames, codec="ffv1", audio=False)
                inputs = [frame.pixels for frame in read_frames(probe(clip))]
                masks = []
                for pixels in inputs:
                    faces = detect_faces(pixels)
                    masks.append(
                        np.asarray(face_mask(pixels.shape[1::-1], faces[0]))
                        if faces
                        else np.zeros(pixels.shape[:2], np.uint8)
                    )
                out = work / f"{name}-{move}-out.mkv"
                swap_clip(
                    engine,
                    clip,
                    out,
                    VideoSettings(swap=settings, temporal_blend=blend),
                    job_folder=work / f"{name}-{move}.job",
                )
                ours = [frame.pixels for frame in read_frames(probe(out))]
                independent = [independent_swap(engine, pixels, settings) for pixels in inputs]
                row = (
                    name,
                    move,
                    flicker(ours, masks, matrices),
                    flicker(independent, masks, matrices),
                    flicker(inputs, masks, matrices),
                )
                rows.append(row)
                print(
                    f"{name:>10} {move:>5}: ours {row[2]:6.2f}  independent {row[3]:6.2f}  input {row[4]:6.2f}  "
                    f"ratio {row[2] / row[3]:.3f}"
                )
    ours_mean = float(np.mean([row[2] for row in rows]))
    independent_mean = float(np.mean([row[3] for row in rows]))
    input_mean = float(np.mean([row[4] for row in rows]))
    print(f"flicker ratio vs independent per-frame swaps (goal <= 0.25): {ours_mean / independent_mean:.3f}")
    print(f"flicker ratio vs the input clip's own: {ours_mean / max(input_mean, 1e-6):.3f}")


if __name__ == "__main__":
    main()
