"""Turn a handful of photos of a person into a LoRA training set.

Each photo becomes a square crop with the eyes level, at the same place and the same scale, written
as PNG next to a ``metadata.csv`` (``file_name,text``): the imagefolder layout diffusers' LoRA
scripts and our trainer read. One bad or faceless photo must not sink the set, so those are reported
and skipped; only a run where nothing succeeds fails.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceswap_core.captions import template_caption
from faceswap_core.errors import DatasetError, FaceswapError
from faceswap_core.faces.align import align_face
from faceswap_core.faces.detect import find_face
from faceswap_core.images import load_image, save_png
from faceswap_core.settings import DEFAULT_CLASS_WORD, DEFAULT_FACE_BACKEND, PREPARE_SIZE

METADATA_FILE = "metadata.csv"


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` wrote and which photos it skipped, with the reason."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)  # file name -> caption, as in metadata.csv


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
    """
    PREPARE_SIZE.check("size", size)
    if not photos:
        raise DatasetError("no photos were given to prepare")
    text = caption.strip() if caption and caption.strip() else template_caption(class_word)
    out = Path(out_dir)
    report = PrepareReport()
    used: set[str] = set()
    for photo in photos:
        label = str(photo)
        try:
            image = load_image(photo, name=label)
            crop = align_face(image, find_face(image, backend=backend, name=label), size=size)
        except FaceswapError as err:
            report.skipped.append((label, str(err)))
            if on_photo:
                on_photo(label, None, str(err))
            continue
        file_name = _unique_name(Path(photo).stem, used)
        path = save_png(crop, out / file_name, {"source": Path(photo).name, "caption": text})
        report.written.append(path)
        report.captions[file_name] = text
        if on_photo:
            on_photo(label, path, None)
    if not report.written:
        reasons = "; ".join(reason for _, reason in report.skipped[:3])
        raise DatasetError(f"none of the {len(photos)} photos could be prepared ({reasons})")
    with open(out / METADATA_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        writer.writerows(report.captions.items())
    return report


def _unique_name(stem: str, used: set[str]) -> str:
    """``stem.png``, or ``stem-2.png`` and so on when two photos share a name (from different folders)."""
    name, number = f"{stem}.png", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.png"
    used.add(name)
    return name
