"""A prepared dataset's captions file, ``metadata.csv`` (``file_name,text``): the imagefolder layout diffusers'
LoRA scripts read. Preparing writes it, the Train tab rewrites it, training and people read it: all here.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from faceswap_core.errors import DatasetError

METADATA_FILE = "metadata.csv"


@dataclass(frozen=True)
class DatasetItem:
    image: Path
    caption: str


def read_metadata(folder: Path) -> list[DatasetItem]:
    """The rows of a prepared dataset; every file named must exist inside ``folder``."""
    path = folder / METADATA_FILE
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"file_name", "text"} <= set(reader.fieldnames):
                raise DatasetError(f"{path}: the header must have the columns file_name and text")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read the captions ({err})") from None
    items = []
    for number, row in enumerate(rows, start=2):
        name = (row.get("file_name") or "").strip()
        image = (folder / name).resolve()
        if not name or folder.resolve() not in image.parents:
            raise DatasetError(f"{path}: line {number} names no image inside the dataset folder: {name!r}")
        if not image.is_file():
            raise DatasetError(f"{path}: line {number} names {name}, which does not exist")
        items.append(DatasetItem(image, (row.get("text") or "").strip()))
    if not items:
        raise DatasetError(f"{path}: lists no images")
    return items


def write_metadata(folder: str | os.PathLike, rows: Iterable[tuple[str, str]]) -> Path:
    """Write ``(file name, caption)`` rows as the dataset's captions file."""
    path = Path(folder) / METADATA_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        writer.writerows(rows)
    return path
