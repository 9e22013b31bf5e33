"""Training-set preparation: aligned crops checked by detecting the faces again in what was written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.captions import template_caption
from faceswap_core.errors import DatasetError, SettingsError
from faceswap_core.faces import find_face
from faceswap_core.faces.align import align_face
from faceswap_core.prepare import METADATA_FILE, prepare_dataset
from faceswap_core.settings import PREPARE_EYE_DISTANCE, PREPARE_EYE_Y


def _measure(crop: Image.Image) -> tuple[float, float, float]:
    """Eye-line tilt (degrees), eye-midpoint offset from its target and eye distance, as crop fractions."""
    face = find_face(crop)
    line = face.right_eye - face.left_eye
    middle = (face.left_eye + face.right_eye) / 2 / crop.width
    offset = float(np.hypot(middle[0] - 0.5, middle[1] - PREPARE_EYE_Y))
    return float(np.degrees(np.arctan2(line[1], line[0]))), offset, face.eye_distance / crop.width


def _read_metadata(folder: Path) -> list[dict[str, str]]:
    with open(folder / METADATA_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_seed_sources_are_level_centred_and_same_scale(seed_sources: list[Path], tmp_path: Path) -> None:
    report = prepare_dataset(seed_sources, tmp_path, size=512)
    assert len(report.written) == len(seed_sources) and not report.skipped
    rows = _read_metadata(tmp_path)
    assert [row["file_name"] for row in rows] == [p.name for p in report.written]
    assert all(row["text"] == template_caption("woman") for row in rows)
    measures = []
    for path in report.written:
        crop = Image.open(path)
        assert crop.size == (512, 512) and crop.mode == "RGB"
        measures.append(_measure(crop))
    tilts, offsets, scales = (np.array(values) for values in zip(*measures, strict=True))
    assert np.abs(tilts).max() < 1.5
    assert offsets.max() < 0.02
    assert scales.max() / scales.min() < 1.08
    assert np.abs(scales - PREPARE_EYE_DISTANCE).max() < 0.02


def test_tilted_face_comes_out_level(astronaut: Image.Image) -> None:
    tilted = astronaut.rotate(20, resample=Image.BICUBIC, center=(220, 130))
    before = find_face(tilted)
    line = before.right_eye - before.left_eye
    assert abs(np.degrees(np.arctan2(line[1], line[0]))) > 12
    tilt, offset, scale = _measure(align_face(tilted, before, size=512))
    assert abs(tilt) < 1.5 and offset < 0.02 and scale == pytest.approx(PREPARE_EYE_DISTANCE, abs=0.02)


def test_crop_leaving_the_photo_is_mirrored_not_black(astronaut: Image.Image) -> None:
    crop = np.asarray(align_face(astronaut, find_face(astronaut), size=256))
    assert crop[:8].mean() > 20  # the face is near the top edge: the rows above are filled by reflection


def test_faceless_and_broken_photos_are_skipped(astronaut: Image.Image, tmp_path: Path) -> None:
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.save(photos / "me.png")
    Image.fromarray(data.coffee()).save(photos / "coffee.jpg")
    (photos / "notes.jpg").write_text("not a photo")
    out = tmp_path / "dataset"
    seen: list[tuple[str, bool]] = []
    report = prepare_dataset(
        [photos / "me.png", photos / "coffee.jpg", photos / "notes.jpg"],
        out,
        size=256,
        caption="a photo of sks, smiling",
        on_photo=lambda name, path, reason: seen.append((Path(name).name, path is not None)),
    )
    assert [p.name for p in report.written] == ["me.png"]
    assert [Path(name).name for name, _ in report.skipped] == ["coffee.jpg", "notes.jpg"]
    assert "no face" in report.skipped[0][1] and "not an image" in report.skipped[1][1]
    assert seen == [("me.png", True), ("coffee.jpg", False), ("notes.jpg", False)]
    assert _read_metadata(out) == [{"file_name": "me.png", "text": "a photo of sks, smiling"}]


def test_nothing_prepared_is_an_error(tmp_path: Path) -> None:
    from skimage import data

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg")
    with pytest.raises(DatasetError, match="none of the 1 photos"):
        prepare_dataset([tmp_path / "coffee.jpg"], tmp_path / "out", size=256)
    assert not (tmp_path / "out" / METADATA_FILE).exists()
    with pytest.raises(DatasetError):
        prepare_dataset([], tmp_path / "out")
    with pytest.raises(SettingsError, match="size"):
        prepare_dataset([tmp_path / "coffee.jpg"], tmp_path / "out", size=100)


def test_same_names_from_two_folders_and_class_word(astronaut: Image.Image, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        astronaut.save(tmp_path / folder / "face.png")
    report = prepare_dataset(
        [tmp_path / "a" / "face.png", tmp_path / "b" / "face.png"], tmp_path / "out", size=256, class_word="man"
    )
    assert [p.name for p in report.written] == ["face.png", "face-2.png"]
    assert {row["text"] for row in _read_metadata(tmp_path / "out")} == {template_caption("man")}
