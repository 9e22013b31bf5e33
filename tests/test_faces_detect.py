"""Face detection and landmarks on real photos: normal, small, huge and faceless images."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.errors import ModelLoadError, NoFaceError, SettingsError
from faceswap_core.faces import Face, detect_faces, find_face
from faceswap_core.faces.detect import dlib_model, dlib_model_path


def _assert_sane(face: Face) -> None:
    """Landmarks in the right order and place: eyes above the mouth, everything near the box."""
    points = face.landmarks
    assert points.shape == (68, 2)
    assert face.left_eye[0] < points[30, 0] < face.right_eye[0]  # nose tip between the eyes
    assert max(face.left_eye[1], face.right_eye[1]) < points[30, 1] < points[48:68, 1].mean() < points[8, 1]
    x0, y0, x1, y1 = face.box
    slack = 0.25 * face.width
    assert (points[:, 0] > x0 - slack).all() and (points[:, 0] < x1 + slack).all()
    assert (points[:, 1] > y0 - slack).all() and (points[:, 1] < y1 + slack).all()
    assert face.score > 0


def test_astronaut_face_and_landmarks(astronaut: Image.Image) -> None:
    faces = detect_faces(astronaut)
    assert len(faces) == 1  # and no false positive on the suit's patches
    face = faces[0]
    _assert_sane(face)
    assert 70 < face.width < 130
    assert 150 < face.center[0] < 290 and 60 < face.center[1] < 190
    assert 0.35 < face.eye_distance / face.jaw_width < 0.6


def test_inputs_path_array_and_bytes_agree(astronaut: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    boxes = {find_face(source).box for source in (astronaut, np.asarray(astronaut), path, path.read_bytes())}
    assert len(boxes) == 1


def test_faces_sorted_largest_first_and_index_selects(astronaut: Image.Image) -> None:
    canvas = Image.new("RGB", (900, 520), (128, 128, 128))
    canvas.paste(astronaut.resize((256, 256)), (20, 20))
    canvas.paste(astronaut, (380, 0))
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].width > 1.5 * faces[1].width and faces[0].center[0] > 380
    assert find_face(canvas, 1).box == faces[1].box
    with pytest.raises(NoFaceError, match="face index 2 .* only 2 faces"):
        find_face(canvas, 2, name="two.png")
    with pytest.raises(SettingsError):
        find_face(canvas, -1)


def test_twelve_megapixel_photo_is_fast_and_precise(astronaut: Image.Image) -> None:
    small = find_face(astronaut)
    big_image = astronaut.resize((3464, 3464), Image.BICUBIC)
    find_face(astronaut)  # models are loaded
    start = time.perf_counter()
    big = find_face(big_image)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    factor = 3464 / 512
    error = np.linalg.norm(big.landmarks / factor - small.landmarks, axis=1)
    assert np.median(error) < 0.05 * small.eye_distance  # fitted at full resolution, same landmarks


def test_small_faces_in_full_body_targets(seed_targets: dict[str, Path]) -> None:
    small = find_face(seed_targets["B"])  # about 55 px wide in 475x713
    _assert_sane(small)
    assert 35 < small.width < 80
    portrait = find_face(seed_targets["C"])  # about 160 px wide in 1600x2400
    _assert_sane(portrait)
    assert 120 < portrait.width < 230


def test_all_seed_photos_have_one_main_face(seed_sources: list[Path], seed_targets: dict[str, Path]) -> None:
    for photo in [*seed_sources, *seed_targets.values()]:
        _assert_sane(find_face(photo))


@pytest.mark.parametrize("kind", ["coffee", "gradient"])
def test_no_face_is_a_clear_error(kind: str) -> None:
    if kind == "coffee":
        from skimage import data

        image = Image.fromarray(data.coffee())
    else:
        ramp = np.linspace(0, 255, 400, dtype=np.uint8)
        image = Image.fromarray(np.stack([np.tile(ramp, (300, 1))] * 3, axis=2))
    assert detect_faces(image) == []
    with pytest.raises(NoFaceError, match=f"^{kind}.jpg: no face found"):
        find_face(image, name=f"{kind}.jpg")


def test_unknown_backend_is_refused(astronaut: Image.Image) -> None:
    with pytest.raises(SettingsError, match="backend"):
        detect_faces(astronaut, backend="magic")


@pytest.mark.skipif(importlib.util.find_spec("face_alignment") is not None, reason="face-alignment is installed")
def test_face_alignment_backend_missing_says_how_to_fix(astronaut: Image.Image) -> None:
    with pytest.raises(ModelLoadError, match="pip install face-alignment.*--backend dlib"):
        detect_faces(astronaut, backend="face-alignment")


@pytest.mark.skipif(importlib.util.find_spec("face_alignment") is None, reason="face-alignment is not installed")
def test_face_alignment_backend_finds_the_face_or_says_how_to_fix(astronaut: Image.Image) -> None:
    """Offline its weights cannot download: one clear sentence. With cached weights: the same face as dlib."""
    try:
        faces = detect_faces(astronaut, backend="face-alignment")
    except ModelLoadError as err:
        assert "could not be loaded" in str(err) and "--backend dlib" in str(err) and "\n" not in str(err)
        return
    reference = find_face(astronaut)
    assert np.median(np.linalg.norm(faces[0].landmarks - reference.landmarks, axis=1)) < 0.15 * reference.eye_distance


def test_dlib_models_are_found_without_import_and_loaded_once() -> None:
    assert dlib_model_path("shape_predictor_68_face_landmarks.dat").is_file()
    assert dlib_model("landmarks") is dlib_model("landmarks")


def test_scaled_face_moves_box_and_landmarks(astronaut: Image.Image) -> None:
    face = find_face(astronaut)
    half = face.scaled(0.5)
    assert half.width == pytest.approx(face.width / 2)
    assert np.allclose(half.landmarks, face.landmarks / 2)


def test_detection_from_two_threads_at_once_finds_the_same_landmarks(astronaut: Image.Image) -> None:
    """Concurrent plans (app sessions, Serve clients) must get the masks a lone plan gets."""
    import threading

    photos = [
        astronaut.crop((100, 0, 403, 301)).resize((128, 128)),
        astronaut.crop((110, 0, 403, 291)).resize((144, 144)),
    ]
    expected = [[face.landmarks.tolist() for face in detect_faces(photo)] for photo in photos]
    found: list[list] = []

    def detect(photo: Image.Image) -> None:
        for _ in range(4):
            found.append([photo.size, [face.landmarks.tolist() for face in detect_faces(photo)]])

    threads = [threading.Thread(target=detect, args=(photo,)) for photo in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    for size, landmarks in found:
        assert landmarks == expected[[photo.size for photo in photos].index(size)]
