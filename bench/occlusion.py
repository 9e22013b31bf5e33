"""Occlusion-aware masks on occluders with a known answer: how much of the occluder is left out of
the mask, and how much of the visible face stays in it, against the landmark-only mask of the same run.

``python bench/occlusion.py [--quick]``. Occluders (bench/occluders.py: a hand, a cup, a microphone,
glasses) are composited in front of the faces of scikit-image's astronaut and, when present, the
shared seed targets. Faces are found on the composited photo, as a user's photo would be. Goals:
occluder left out >= 0.9, visible face kept >= 0.95. Visible face is what no occluder covers at all;
the face seen through the glasses' tinted lenses (``LENS_ALPHA``) is neither, and is reported on its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from occluders import KINDS, LENS_ALPHA, composite  # noqa: E402

from faceswap_core.faces.detect import detect_faces  # noqa: E402
from faceswap_core.faces.masks import face_mask  # noqa: E402
from faceswap_core.images import load_image  # noqa: E402

SOFT_SIGMA = 1.5  # pixels of Gaussian blur at photo size for the soft pass
SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_faces" / "targets"


def photos(quick: bool) -> list[tuple[str, Image.Image]]:
    from skimage import data

    found = [("astronaut", Image.fromarray(data.astronaut()))]
    if not quick:
        found += [(path.stem, load_image(path)) for path in sorted(SEED.glob("*.png"))]
    return found


def shares(mask: np.ndarray, region: np.ndarray, alpha: np.ndarray) -> tuple[float, float]:
    """(occluder pixels of the face region left out, visible face pixels of the region kept)."""
    covered = region & (alpha >= 128)
    visible = region & (alpha == 0)
    left_out = float((mask[covered] < 128).mean()) if covered.any() else float("nan")
    kept = float((mask[visible] >= 128).mean()) if visible.any() else float("nan")
    return left_out, kept


def soft_shares(scene: Image.Image, alpha: np.ndarray) -> tuple[float, float]:
    """``shares`` on ``scene`` blurred by ``SOFT_SIGMA``: a photo out of focus or upscaled from a phone."""
    blurred = scene.filter(ImageFilter.GaussianBlur(SOFT_SIGMA))
    faces = detect_faces(blurred)
    if not faces:
        return 0.0, 0.0
    plain = np.asarray(face_mask(blurred.size, faces[0]))
    return shares(np.asarray(face_mask(blurred.size, faces[0], image=blurred)), plain >= 128, alpha)


def seen_through(mask: np.ndarray, region: np.ndarray, alpha: np.ndarray) -> float:
    """The share of the face seen through a clear part of the occluder (a lens) that the mask keeps."""
    lens = region & (alpha == LENS_ALPHA)
    return float((mask[lens] >= 128).mean()) if lens.any() else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the astronaut only")
    args = parser.parse_args(argv)
    rows: dict[str, list[tuple[float, float, float, float]]] = {kind: [] for kind in KINDS}
    soft: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    seconds = {"landmarks": 0.0, "occlusion": 0.0}
    for name, photo in photos(args.quick):
        clean = detect_faces(photo)
        if not clean:
            print(f"{name}: no face on the clean photo, skipped")
            continue
        untouched = np.asarray(face_mask(photo.size, clean[0]))
        clean_aware = np.asarray(face_mask(photo.size, clean[0], image=photo))
        unchanged = np.array_equal(clean_aware, untouched)
        clean_kept = float((clean_aware[untouched >= 128] >= 128).mean())
        print(f"{name}: no occluder, mask unchanged: {unchanged}, face kept {clean_kept:.3f}")
        for kind in KINDS:
            scene, alpha = composite(photo, kind, clean[0])
            faces = detect_faces(scene)
            if not faces:
                print(f"  {kind:10s} face not found with the occluder in front")
                rows[kind].append((0.0, 0.0, 0.0, 0.0))
                continue
            start = time.perf_counter()
            plain = np.asarray(face_mask(scene.size, faces[0]))
            seconds["landmarks"] += time.perf_counter() - start
            start = time.perf_counter()
            aware = np.asarray(face_mask(scene.size, faces[0], image=scene))
            seconds["occlusion"] += time.perf_counter() - start
            region = plain >= 128  # the face as the landmarks outline it: what a swap would repaint
            base = shares(plain, region, alpha)
            ours = shares(aware, region, alpha)
            rows[kind].append((*base, *ours))
            soft[kind].append(soft_shares(scene, alpha))
            lens = (
                f"  seen through the lenses kept {seen_through(aware, region, alpha):.3f}" if kind == "glasses" else ""
            )
            print(
                f"  {kind:10s} occluder left out {ours[0]:.3f} (landmarks {base[0]:.3f})  "
                f"visible face kept {ours[1]:.3f} (landmarks {base[1]:.3f}){lens}"
            )
    print("mean over photos (goal: left out >= 0.9, kept >= 0.95)")
    for kind, values in rows.items():
        if values:
            base_out, base_kept, out, kept = np.nanmean(np.array(values), axis=0)
            print(
                f"  {kind:10s} left out {out:.3f} vs landmarks {base_out:.3f}; kept {kept:.3f}, "
                f"ratio to landmarks {kept / base_kept:.3f}"
            )
    print(f"soft photos (the same scenes blurred by {SOFT_SIGMA} px: out of focus, upscaled), mean")
    for kind, values in soft.items():
        if values:
            out, kept = np.nanmean(np.array(values), axis=0)
            print(f"  {kind:10s} left out {out:.3f}; kept {kept:.3f}")
    ratio = seconds["occlusion"] / max(seconds["landmarks"], 1e-9)
    masks = max(sum(len(values) for values in rows.values()), 1)
    print(
        f"time per face: occlusion-aware mask {seconds['occlusion'] / masks:.3f} s, landmark-only "
        f"{seconds['landmarks'] / masks:.4f} s, ratio {ratio:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
