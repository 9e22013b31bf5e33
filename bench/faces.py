"""Timing of the face toolkit: detect + landmarks + mask on a 12 MP and a 0.3 MP photo, and prepare.

Run: python bench/faces.py. Prints medians; the 12 MP / 0.3 MP ratio shows what the reduced-copy
detection saves (the pixel ratio is 40x). The seed-photo part is skipped when ../shared is absent.
"""

from __future__ import annotations

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
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    photos = {
        "0.3 MP (640x480)": astronaut.resize((640, 640)).crop((0, 0, 640, 480)),
        "12 MP (4000x3000)": astronaut.resize((4000, 4000), Image.BICUBIC).crop((0, 0, 4000, 3000)),
    }
    detect_and_mask(photos["0.3 MP (640x480)"])  # load the models once, outside the timings
    results = {}
    for name, image in photos.items():
        results[name] = median_seconds(lambda image=image: detect_and_mask(image), repeats=5)
        print(f"detect + landmarks + mask, {name}: median {results[name] * 1000:.0f} ms")
    ratio = results["12 MP (4000x3000)"] / results["0.3 MP (640x480)"]
    print(f"12 MP / 0.3 MP time ratio: {ratio:.1f}x for 40x the pixels")

    sources = sorted(SEED_SOURCES.glob("*.jpg"))
    if not sources:
        print(f"prepare: skipped, no seed photos in {SEED_SOURCES}")
        return
    with tempfile.TemporaryDirectory() as out:
        seconds = median_seconds(lambda: prepare_dataset(sources, out, size=1024), repeats=3)
    print(
        f"prepare {len(sources)} seed photos at 1024 px: median {seconds:.2f} s ({seconds / len(sources):.2f} s/photo)"
    )


if __name__ == "__main__":
    main()
