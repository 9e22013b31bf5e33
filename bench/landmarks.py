"""Landmark backends against each other: faces found, error normalised by eye distance, time.

``python bench/landmarks.py [--examples DIR] [--quick]``. ``--examples`` is a folder with dlib's
annotated examples (``examples/faces`` of github.com/davisking/dlib: ``*_with_face_landmarks.xml``
and the jpgs; data only, not shipped here). Their 68 points were made by dlib's own 68-point model
and corrected by hand, so dlib starts with an advantage on them. On the shared seed photos (no
annotations) it prints faces found, time and how far the backends lie from each other. The baseline
is dlib's 68-point model, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceswap_core.faces.detect import LEFT_EYE, RIGHT_EYE, detect_faces  # noqa: E402
from faceswap_core.images import load_image  # noqa: E402

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_faces"
BACKENDS = ("dlib", "mediapipe")


def annotations(folder: Path) -> list[tuple[Path, list[np.ndarray]]]:
    """(image, [68x2 points per annotated face]) from dlib's imglab XML files in ``folder``."""
    found = []
    for xml in sorted(folder.glob("*_with_face_landmarks.xml")):
        for image in ET.parse(xml).getroot().iter("image"):
            faces = []
            for box in image.iter("box"):
                parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
                if len(parts) == 68:
                    faces.append(np.array([parts[i] for i in range(68)]))
            if faces:
                found.append((folder / image.get("file"), faces))
    return found


def eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[LEFT_EYE].mean(0) - points[RIGHT_EYE].mean(0)))


def match(truth: np.ndarray, faces: list) -> np.ndarray | None:
    """The detected face whose eye midpoint is nearest the annotated one, if within one eye distance."""
    middle = (truth[LEFT_EYE].mean(0) + truth[RIGHT_EYE].mean(0)) / 2
    best, best_gap = None, eye_distance(truth)
    for face in faces:
        gap = float(np.linalg.norm((face.left_eye + face.right_eye) / 2 - middle))
        if gap < best_gap:
            best, best_gap = face.landmarks, gap
    return best


def run_examples(folder: Path, quick: bool) -> None:
    data = annotations(folder)
    if quick:
        data = data[:2]
    total = sum(len(faces) for _, faces in data)
    print(f"dlib examples: {len(data)} images, {total} annotated faces (annotations made with dlib's model)")
    results = {}
    for backend in BACKENDS:
        errors, per_point, seconds = [], [], 0.0
        for path, truths in data:
            image = load_image(path)
            start = time.perf_counter()
            faces = detect_faces(image, backend=backend)
            seconds += time.perf_counter() - start
            for truth in truths:
                points = match(truth, faces)
                if points is not None:
                    distance = np.linalg.norm(points - truth, axis=1) / eye_distance(truth)
                    errors.append(float(distance.mean()))
                    per_point.append(distance)
        results[backend] = (len(errors), float(np.mean(errors)) if errors else float("nan"), seconds)
        worst = [int(i) for i in np.argsort(np.mean(per_point, axis=0))[::-1][:5]] if per_point else []
        print(
            f"  {backend:10s} found {len(errors)}/{total}  mean error {results[backend][1]:.3f} eye distances  "
            f"median {np.median(errors) if errors else float('nan'):.3f}  {seconds:.2f} s  worst points {list(worst)}"
        )
    base = results["dlib"]
    free = results["mediapipe"]
    ratios = f"found {free[0] / max(base[0], 1):.2f}, error {free[1] / base[1]:.2f}, time {free[2] / base[2]:.2f}"
    print(f"  ratio mediapipe/dlib: {ratios}")


def run_seed(quick: bool) -> None:
    """Faces found, time and the gap between the backends on the seed photos (the astronaut without them)."""
    from skimage import data

    paths = sorted((SEED / "targets").glob("*")) + sorted((SEED / "source").glob("*"))
    photos = [load_image(p) for p in paths if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not photos or quick:
        photos = photos[:1] or [load_image(data.astronaut())]
    found = {b: 0 for b in BACKENDS}
    seconds = {b: 0.0 for b in BACKENDS}
    gaps = []
    for image in photos:
        faces = {}
        for backend in BACKENDS:
            start = time.perf_counter()
            faces[backend] = detect_faces(image, backend=backend)
            seconds[backend] += time.perf_counter() - start
            found[backend] += len(faces[backend])
        for face in faces["dlib"]:
            other = match(face.landmarks, faces["mediapipe"])
            if other is not None:
                gaps.append(float(np.mean(np.linalg.norm(other - face.landmarks, axis=1)) / face.eye_distance))
    print(f"seed photos: {len(photos)}")
    for backend in BACKENDS:
        print(f"  {backend:10s} faces {found[backend]}  {seconds[backend]:.2f} s")
    print(
        f"  ratio mediapipe/dlib: faces {found['mediapipe'] / max(found['dlib'], 1):.2f}, time "
        f"{seconds['mediapipe'] / seconds['dlib']:.2f}; mean gap between them {np.mean(gaps):.3f} eye distances"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, help="folder with dlib's annotated examples/faces")
    parser.add_argument("--quick", action="store_true", help="one or two photos only")
    args = parser.parse_args(argv)
    for backend in BACKENDS:  # load the models outside the timings
        detect_faces(np.zeros((64, 64, 3), dtype=np.uint8), backend=backend)
    if args.examples and args.examples.is_dir():
        run_examples(args.examples, args.quick)
    else:
        print("dlib examples: no --examples folder, skipped")
    run_seed(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
