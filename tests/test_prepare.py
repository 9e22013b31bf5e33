"""Training-set preparation: aligned crops checked by detecting the faces again in what was written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.captions import template_caption
from faceswap_core.dataset_file import METADATA_FILE
from faceswap_core.errors import DatasetError, SettingsError
from faceswap_core.faces import detect_faces, find_face
from faceswap_core.faces.align import align_face
from faceswap_core.prepare import prepare_dataset, unlike_the_others
from faceswap_core.settings import PREPARE_EYE_DISTANCE, PREPARE_EYE_Y, SAME_PERSON_DISTANCE

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"


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
    assert report.unlike == {}  # one person in varied light and angles: nobody flagged
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


def _people(*names: str) -> list[Path]:
    paths = [PEOPLE / name for name in names]
    if not all(path.is_file() for path in paths):
        pytest.skip("shared photos of people not present")
    return paths


def _beside(big: Image.Image, small: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (big.width + small.width, big.height), "white")
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, big.height - small.height))
    return canvas


def test_group_photo_is_skipped_but_a_face_in_the_background_is_not(astronaut: Image.Image, tmp_path: Path) -> None:
    _beside(astronaut, astronaut).save(tmp_path / "pair.jpg")  # two faces of one size
    _beside(astronaut.resize((1024, 1024)), astronaut.resize((358, 358))).save(tmp_path / "background.jpg")
    assert len(detect_faces(Image.open(tmp_path / "background.jpg"))) == 2  # the small one is found, and passes
    report = prepare_dataset([tmp_path / "pair.jpg", tmp_path / "background.jpg"], tmp_path / "out", size=256)
    assert [p.name for p in report.written] == ["background.png"]
    assert report.skipped == [
        (
            str(tmp_path / "pair.jpg"),
            "pair.jpg: 2 faces found; crop the photo to the person or use a photo of them alone",
        )
    ]


def test_shared_group_photo_does_not_join_the_set(tmp_path: Path) -> None:
    photos = _people("obama.jpg", "obama2.jpg", "two_people.jpg")
    report = prepare_dataset(photos, tmp_path, size=256)
    assert [p.name for p in report.written] == ["obama.png", "obama2.png"]
    assert [Path(name).name for name, _ in report.skipped] == ["two_people.jpg"]
    assert "2 faces found" in report.skipped[0][1] and str(PEOPLE) not in report.skipped[0][1]


def test_somebody_else_is_flagged_not_dropped(tmp_path: Path) -> None:
    report = prepare_dataset(_people("obama.jpg", "obama2.jpg", "biden.jpg"), tmp_path, size=256)
    assert len(report.written) == 3 and list(report.unlike) == ["biden.png"]
    assert 0.7 < report.unlike["biden.png"] < 0.9  # measured 0.80: median of 0.84 and 0.76 to Obama's photos
    assert "biden.png" in report.captions  # still in the set: the person decides


def test_the_person_is_whom_most_photos_show() -> None:
    rng = np.random.default_rng(0)
    person, stranger = rng.normal(0, 1, 128), rng.normal(0, 1, 128)
    person *= 0.5 / np.linalg.norm(person)  # own photos 0.2-0.3 apart, 0.7+ from the stranger
    stranger = person + stranger * 0.8 / np.linalg.norm(stranger)

    def near(centre: np.ndarray) -> np.ndarray:
        noise = rng.normal(0, 1, 128)
        return centre + noise * 0.12 / np.linalg.norm(noise)

    faces = [near(person), near(person), near(stranger), near(person)]
    found = unlike_the_others(faces)
    assert list(found) == [2] and found[2] > SAME_PERSON_DISTANCE
    assert unlike_the_others(faces[1:3]) == {}  # of two faces, which one is odd cannot be told
    assert unlike_the_others([near(person) for _ in range(4)]) == {}
