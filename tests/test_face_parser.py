"""The learned face parser (``--face-parser``), run through MediaPipe on tiny stand-in segmenters built here."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.faces import detect_faces
from faceswap_core.faces.detect import Face
from faceswap_core.faces.masks import face_mask
from faceswap_core.faces.parser import CLASSES, load_parser
from faceswap_core.images import png_metadata
from faceswap_core.settings import ModelSpec, SwapSettings
from tests.parser_factory import constant_segmenter, make_segmenter


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parsers")
    found = {label: constant_segmenter(folder / f"{label.replace(' ', '-')}.tflite", label) for label in CLASSES}
    # Blue is an accessory, everything else face skin: a blue object in front of the face is parsed out.
    weights = [[0.0, 0.0, 0.0]] * len(CLASSES)
    weights[CLASSES.index("others")] = [-20.0, -20.0, 30.0]
    weights[CLASSES.index("face skin")] = [0.0, 0.0, 0.0]
    found["blue"] = make_segmenter(folder / "blue.tflite", weights, [0.0, 0.0, 0.0, 5.0, 0.0, 0.0])
    return found


@pytest.fixture(scope="module")
def face(astronaut: Image.Image) -> Face:
    return detect_faces(astronaut)[0]


def _mask(photo: Image.Image, face: Face, source: str | None) -> np.ndarray:
    parser = None if source is None else load_parser(source)
    return np.asarray(face_mask(photo.size, face, image=photo, parser=parser))


def test_what_the_parser_calls_face_skin_stays_in_the_mask(
    astronaut: Image.Image, face: Face, models: dict[str, Path]
) -> None:
    assert np.array_equal(_mask(astronaut, face, str(models["face skin"])), _mask(astronaut, face, None))


@pytest.mark.parametrize("label", ["hair", "clothes", "others", "background"])
def test_what_it_calls_anything_else_is_cut_out_but_eyes_brows_and_lips(
    astronaut: Image.Image, face: Face, models: dict[str, Path], label: str
) -> None:
    plain = np.asarray(face_mask(astronaut.size, face)) >= 128
    parsed = _mask(astronaut, face, str(models[label])) >= 128
    assert parsed.sum() < 0.5 * plain.sum()  # the cheeks, nose and forehead are gone
    eyes = np.zeros(plain.shape, dtype=bool)
    for part in (slice(36, 42), slice(42, 48)):
        x0, y0 = face.landmarks[part].min(axis=0).astype(int)
        x1, y1 = face.landmarks[part].max(axis=0).astype(int)
        eyes[y0 : y1 + 1, x0 : x1 + 1] = True
    assert parsed[eyes & plain].mean() > 0.9  # the landmarks know the eyes better than an unknown parser


def test_a_hand_it_finds_is_cut_out_over_the_features_too(
    astronaut: Image.Image, face: Face, models: dict[str, Path]
) -> None:
    assert (_mask(astronaut, face, str(models["body skin"])) >= 128).sum() == 0


def test_a_blue_object_in_front_of_the_face_is_parsed_out(
    astronaut: Image.Image, face: Face, models: dict[str, Path]
) -> None:
    scene = astronaut.copy()
    x0, y0, x1, y1 = (int(v) for v in face.box)
    patch = (x0 + (x1 - x0) // 6, (y0 + y1) // 2, x0 + (x1 - x0) // 2, y1 - (y1 - y0) // 8)
    scene.paste((20, 40, 230), patch)
    blue = np.zeros(astronaut.size[::-1], dtype=bool)
    blue[patch[1] : patch[3], patch[0] : patch[2]] = True
    plain = np.asarray(face_mask(scene.size, face)) >= 128
    parsed = _mask(scene, face, str(models["blue"])) >= 128
    assert (~parsed[blue & plain]).mean() > 0.95
    assert parsed[plain & ~blue].mean() > 0.9


def test_the_engine_cuts_what_its_parser_sees_and_records_it(
    tiny_model_dir: Path, astronaut: Image.Image, models: dict[str, Path], tmp_path: Path
) -> None:
    settings = SwapSettings(steps=4, seed=1)
    plain = Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=tmp_path / "a").swap(
        astronaut, settings=settings
    )
    spec = ModelSpec(str(tiny_model_dir), device="cpu", face_parser=str(models["hair"]))
    parsed = Engine(spec, lora_dir=tmp_path / "b").swap(astronaut, settings=settings)
    assert parsed.record["face_parser"] == str(models["hair"]) and "face_parser" not in plain.record
    assert np.asarray(parsed.mask).sum() < 0.5 * np.asarray(plain.mask).sum()
    outside = np.asarray(parsed.mask) == 0
    assert np.array_equal(np.asarray(parsed.image)[outside], np.asarray(astronaut)[outside])


def test_cli_mask_takes_the_parser_and_refuses_what_is_not_one(
    astronaut: Image.Image, models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, out = tmp_path / "astronaut.png", tmp_path / "mask.png"
    astronaut.save(photo)
    assert main(["mask", str(photo), "-o", str(out), "--face-parser", str(models["hair"])]) == 0
    assert png_metadata(out)["face_parser"] == str(models["hair"])
    pickle = tmp_path / "parser.tflite"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle posing as a model
    capsys.readouterr()
    assert main(["mask", str(photo), "-o", str(out), "--face-parser", str(pickle)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a TFLite model" in err


def test_a_segmenter_without_the_six_classes_is_refused(astronaut: Image.Image, face: Face, tmp_path: Path) -> None:
    two = make_segmenter(tmp_path / "two.tflite", [[0.0, 0.0, 0.0]] * 2, [0.0, 1.0], classes=2)
    with pytest.raises(SettingsError, match="gives 2 classes"):
        _mask(astronaut, face, str(two))


@pytest.fixture
def served(models: dict[str, Path]) -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    """The hair stand-in served over HTTP on localhost, as the real model is from MediaPipe's storage."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(models["hair"].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{models['hair'].name}", server
    server.shutdown()


def test_a_url_is_downloaded_once_into_the_cache(
    served: tuple[str, http.server.ThreadingHTTPServer],
    astronaut: Image.Image,
    face: Face,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, server = served
    monkeypatch.setenv("FACESWAP_CACHE", str(tmp_path / "cache"))
    load_parser.cache_clear()
    first = _mask(astronaut, face, url)
    cached = tmp_path / "cache" / "face-parser" / url.rsplit("/", 1)[-1]
    assert cached.is_file() and [p.name for p in cached.parent.iterdir()] == [cached.name]  # no partial left
    server.shutdown()
    load_parser.cache_clear()
    assert np.array_equal(_mask(astronaut, face, url), first)  # from the cache: the server is gone


def test_an_unreachable_url_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESWAP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SettingsError, match="could not download the face parser") as caught:
        load_parser("http://127.0.0.1:9/selfie_multiclass_256x256.tflite")
    assert "\n" not in str(caught.value)
    assert not any((tmp_path / "cache" / "face-parser").iterdir())


def test_the_app_takes_the_parser_from_its_flag_or_environment() -> None:
    from faceswap_core.ui.config import parse_config

    assert parse_config(["--face-parser", "selfie-multiclass"], environ={}).model.face_parser == "selfie-multiclass"
    assert parse_config([], environ={"FACESWAP_FACE_PARSER": "/models/parser.tflite"}).model.face_parser == (
        "/models/parser.tflite"
    )
    assert parse_config([], environ={}).model.face_parser is None  # off unless the server names one


def test_the_app_will_not_start_on_a_parser_it_cannot_load(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import app

    missing = tmp_path / "nowhere.tflite"
    argv = [
        "--base",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--lora-dir",
        str(tmp_path),
        "--face-parser",
        str(missing),
    ]
    assert app.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere.tflite" in err
