"""Timing of the face toolkit: detect + landmarks + mask on a 12 MP and a 0.3 MP photo, and prepare.

Run: python bench/faces.py [--quick]. Prints medians; the 12 MP / 0.3 MP ratio shows what the
reduced-copy detection saves (the pixel ratio is 40x). The seed-photo part is skipped when ../shared
is absent. ``--quick`` (CI smoke run) uses a 3 MP photo, one repeat and two seed photos at 256 px.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceswap_core.faces import find_face  # noqa: E402
from faceswap_core.faces.masks import face_mask  # noqa: E402
from faceswap_core.prepare import prepare_dataset  # noqa: E402

SEED_SOURCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_faces" / "source"


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def detect_and_mask(image: Image.Image) -> Image.Image:
    return face_mask(image.size, find_face(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 3 MP photo, 1 repeat, 2 seed photos")
    args = parser.parse_args()
    large, repeats, prepare_photos, prepare_size = ((4000, 3000), 5, None, 1024)
    if args.quick:
        large, repeats, prepare_photos, prepare_size = ((2000, 1500), 1, 2, 256)

    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    small = astronaut.resize((640, 640)).crop((0, 0, 640, 480))
    big = astronaut.resize((large[0], large[0]), Image.BICUBIC).crop((0, 0, *large))
    megapixels = large[0] * large[1] / 1e6
    photos = {"0.3 MP (640x480)": small, f"{megapixels:g} MP ({large[0]}x{large[1]})": big}
    detect_and_mask(small)  # load the models once, outside the timings
    results = {}
    for name, image in photos.items():
        results[name] = median_seconds(lambda image=image: detect_and_mask(image), repeats=repeats)
        print(f"detect + landmarks + mask, {name}: median {results[name] * 1000:.0f} ms")
    times = list(results.values())
    pixel_ratio = big.width * big.height / (small.width * small.height)
    print(f"{megapixels:g} MP / 0.3 MP time ratio: {times[1] / times[0]:.1f}x for {pixel_ratio:.0f}x the pixels")

    sources = sorted(SEED_SOURCES.glob("*.jpg"))[:prepare_photos]
    if not sources:
        print(f"prepare: skipped, no seed photos in {SEED_SOURCES}")
        return
    with tempfile.TemporaryDirectory() as out:
        seconds = median_seconds(lambda: prepare_dataset(sources, out, size=prepare_size), repeats=min(repeats, 3))
    print(
        f"prepare {len(sources)} seed photos at {prepare_size} px: median {seconds:.2f} s "
        f"({seconds / len(sources):.2f} s/photo)"
    )


if __name__ == "__main__":
    main()
