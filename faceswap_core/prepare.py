"""Turn a handful of photos of a person into a LoRA training set.

Each photo becomes a square crop with the eyes level, at the same place and the same scale, written
as PNG next to a ``metadata.csv`` (``file_name,text``): the imagefolder layout diffusers' LoRA
scripts and our trainer read. One bad or faceless photo must not sink the set, so those are reported
and skipped; only a run where nothing succeeds fails.

Two mistakes a person easily makes are caught here, before any training: a group photo (two faces of
similar size: whose face is the person's cannot be told, and the other face would land in the crop)
is skipped; a photo of somebody else (its dlib face descriptor far from the others') is kept but
flagged in ``PrepareReport.unlike``, since the check can be wrong and only the person can tell.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from faceswap_core.captions import template_caption
from faceswap_core.dataset_file import write_metadata
from faceswap_core.errors import DatasetError, FaceswapError, NoFaceError
from faceswap_core.faces.align import align_face
from faceswap_core.faces.detect import Face, detect_faces
from faceswap_core.images import load_image, save_png
from faceswap_core.settings import (
    DEFAULT_CLASS_WORD,
    DEFAULT_FACE_BACKEND,
    PREPARE_SECOND_FACE_RATIO,
    PREPARE_SIZE,
    SAME_PERSON_DISTANCE,
)


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` wrote and which photos it skipped, with the reason."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)  # file name -> caption, as in metadata.csv
    unlike: dict[str, float] = field(default_factory=dict)  # file name -> distance, for faces unlike the others


def prepare_dataset(
    photos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    size: int = int(PREPARE_SIZE.default),
    caption: str | None = None,
    class_word: str = DEFAULT_CLASS_WORD,
    backend: str = DEFAULT_FACE_BACKEND,
    on_photo: Callable[[str, Path | None, str | None], None] | None = None,
) -> PrepareReport:
    """Write aligned ``size`` crops of the largest face in each photo to ``out_dir`` with ``metadata.csv``.

    ``caption`` applies to every crop; by default it is the template caption for ``class_word``.
    ``on_photo(name, written_path_or_None, skip_reason_or_None)`` is called after each photo.
    Messages name photos by their file name only (an upload's folder is the server's business).
    """
    PREPARE_SIZE.check("size", size)
    if not photos:
        raise DatasetError("no photos were given to prepare")
    text = caption.strip() if caption and caption.strip() else template_caption(class_word)
    out = Path(out_dir)
    report = PrepareReport()
    used: set[str] = set()
    descriptors: dict[str, np.ndarray | None] = {}
    for photo in photos:
        label = Path(photo).name
        try:
            image = load_image(photo, name=label)
            face = _the_person(image, label, backend)
            crop = align_face(image, face, size=size)
        except FaceswapError as err:
            report.skipped.append((str(photo), str(err)))
            if on_photo:
                on_photo(str(photo), None, str(err))
            continue
        file_name = _unique_name(Path(photo).stem, used)
        path = save_png(crop, out / file_name, {"source": label, "caption": text})
        report.written.append(path)
        report.captions[file_name] = text
        descriptors[file_name] = _descriptor(image, face)
        if on_photo:
            on_photo(str(photo), path, None)
    if all(d is not None for d in descriptors.values()):
        names = list(descriptors)
        found = unlike_the_others([descriptors[n] for n in names])  # type: ignore[misc]
        report.unlike = {names[index]: distance for index, distance in found.items()}
    if not report.written:
        reasons = "; ".join(reason for _, reason in report.skipped[:3])
        raise DatasetError(f"none of the {len(photos)} photos could be prepared ({reasons})")
    write_metadata(out, report.captions.items())
    return report


def _the_person(image: Image.Image, label: str, backend: str) -> Face:
    """The largest face, unless a second face is about as large (a group photo: DatasetError)."""
    faces = detect_faces(image, backend=backend, name=label)
    if not faces:
        raise NoFaceError(f"{label}: no face found (a frontal face about 40 px wide or larger is needed)")
    large = [face for face in faces if face.width >= PREPARE_SECOND_FACE_RATIO * faces[0].width]
    if len(large) > 1:
        raise DatasetError(
            f"{label}: {len(large)} faces found; crop the photo to the person or use a photo of them alone"
        )
    return faces[0]


def _descriptor(image: Image.Image, face: Face) -> np.ndarray | None:
    """The face's identity descriptor, or None when the recognition model is missing (no check then)."""
    from faceswap_core.faces.identity import face_descriptor

    try:
        return face_descriptor(image, face)
    except FaceswapError:
        return None


def unlike_the_others(descriptors: list[np.ndarray], threshold: float = SAME_PERSON_DISTANCE) -> dict[int, float]:
    """Indexes of the faces that do not look like the set's person, with their distance to that person.

    The person is the one most photos show: the photo with the smallest median distance to all the
    others is the anchor, and the photos within ``threshold`` of it show the person. A photo's distance
    is its median distance to those photos (itself left out), so one stranger cannot pull the person's
    own photos over the line as a plain mean would with three photos. Needs three faces: of two
    different faces, which one is the odd one out cannot be told.
    """
    if len(descriptors) < 3:
        return {}
    stack = np.stack(descriptors)
    distances = np.linalg.norm(stack[:, None] - stack[None], axis=-1)
    count = len(descriptors)
    medians = [float(np.median(np.delete(distances[i], i))) for i in range(count)]
    anchor = int(np.argmin(medians))
    person = [j for j in range(count) if distances[anchor, j] <= threshold]
    if len(person) < 2:  # nobody looks like anybody: compare each photo with all the others
        person = list(range(count))
    unlike = {}
    for index in range(count):
        distance = float(np.median([distances[index, j] for j in person if j != index]))
        if distance > threshold:
            unlike[index] = round(distance, 3)
    return unlike


def _unique_name(stem: str, used: set[str]) -> str:
    """``stem.png``, or ``stem-2.png`` and so on when two photos share a name (from different folders)."""
    name, number = f"{stem}.png", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.png"
    used.add(name)
    return name
