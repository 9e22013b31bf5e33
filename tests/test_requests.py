"""The request schema: JSON round trip, hostile JSON, replay, one request through every front end, plug-ins."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.conditioning import Contribution
from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.images import png_metadata
from faceswap_core.requests import SCHEMA_VERSION, FaceRequest, SwapRequest
from faceswap_core.settings import MAX_FACES, ModelSpec, SwapSettings
from faceswap_core.ui.guards import public_record
from faceswap_core.ui.swap import SwapHandlers

FAST = SwapSettings(steps=4, strength=0.5, seed=7)


@pytest.fixture(scope="module")
def photo(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    astronaut.crop((100, 0, 356, 256)).save(path)
    return path


@pytest.fixture(scope="module")
def mask_file(photo: Path) -> Path:
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (60, 40, 180, 170))
    path = photo.with_name("mask.png")
    mask.save(path)
    return path


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=tmp_path_factory.mktemp("loras"))


def _without_timings(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "timings"}


# --- JSON ----------------------------------------------------------------------------------------
def test_a_request_round_trips_through_json(photo: Path, mask_file: Path) -> None:
    request = SwapRequest(
        str(photo),
        faces=(FaceRequest(0, "alice", strength=0.6), FaceRequest("all", "", prompt="a photo of a man face")),
        person="bob",
        settings=replace(FAST, identity_photos=(str(photo),), fast=True, extras={"keep": {"weight": 0.5}}),
        mask=str(mask_file),
    )
    text = request.to_json()
    assert json.loads(text)["version"] == SCHEMA_VERSION
    assert SwapRequest.from_json(text) == request
    assert SwapRequest.from_json(SwapRequest.from_json(text).to_json()).to_json() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"image": "a.png", "colour": 1}', "unknown field"),
        ('{"image": "a.png", "settings": {"strenght": 0.5}}', "unknown field"),
        ('{"image": "a.png", "settings": {"strength": "0.5"}}', "settings.strength must be a number"),
        ('{"image": "a.png", "settings": {"steps": true}}', "settings.steps must be a whole number"),
        ('{"image": "a.png", "settings": {"strength": NaN}}', "NaN"),
        ('{"image": "a.png", "settings": {"strength": 7}}', "strength must be between"),
        ('{"image": "a.png", "faces": [{"face": -1}]}', "face must be an index"),
        ('{"image": "a.png", "faces": [{"face": "left"}]}', "must be an index"),
        ('{"image": "a.png", "faces": [{"face": 0}, {"face": 0}]}', "chosen more than once"),
        ('{"image": "a.png", "faces": [{"face": "reference"}]}', "reference photo"),
        ('{"image": "a.png", "faces": {"face": 0}}', "faces must be a JSON list"),
        ('{"image": "a.png", "version": 99}', "version 99 is not supported"),
        ('{"image": 5}', "image must be a name"),
        ("[1, 2]", "request must be a JSON object"),
        ("{", "not valid JSON"),
        ('{"image": "a.png", "settings": {"seed": ' + "9" * 5000 + "}}", "request"),
        ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
        ('{"image": "a.png", "faces": [' + ",".join(['{"face": 1}'] * (MAX_FACES + 1)) + "]}", "at most"),
        ('{"image": "a.png", "settings": {"identity_photos": ' + json.dumps(["p.png"] * 9) + "}}", "at most 8"),
        ('{"image": "' + "x" * 200_000 + '"}', "characters long"),
        ('{"image": "a.png", "landmarks": "opencv"}', "landmarks must be one of mediapipe, dlib"),
        ('{"image": "a.png", "landmarks": ["dlib"]}', "landmarks must be one of mediapipe, dlib"),
    ],
)
def test_hostile_json_gets_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        SwapRequest.from_json(text)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


# --- the record and replay -----------------------------------------------------------------------
def test_the_record_is_the_request_plus_what_happened(engine: Engine, photo: Path, mask_file: Path) -> None:
    result = engine.run(SwapRequest(str(photo), settings=replace(FAST, seed=None), mask=str(mask_file)))
    request = result.record["request"]
    seed = result.record["faces"][0]["seed"]
    assert request["settings"]["seed"] == seed  # a random seed is drawn once and written down
    assert request["image"]["name"] == "astronaut.png" and len(request["image"]["sha256"]) == 64
    assert str(photo.parent) not in json.dumps(result.record)  # files by name, never by server path
    outside = np.asarray(Image.open(mask_file)) == 0
    assert np.array_equal(np.asarray(result.image)[outside], np.asarray(Image.open(photo).convert("RGB"))[outside])


def test_replay_gives_the_same_pixels(
    tiny_model_dir: Path, photo: Path, mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, again = tmp_path / "out.png", tmp_path / "again.png"
    base = ["--base", str(tiny_model_dir), "--device", "cpu"]
    assert main(["swap", str(photo), "-o", str(out), "--mask", str(mask_file), "--steps", "4", *base]) == 0
    capsys.readouterr()
    assert "mask" in png_metadata(out)  # the painted mask travels in the result
    assert main(["replay", str(out), "-o", str(again), "--image", str(photo), *base]) == 0
    assert json.loads(capsys.readouterr().out)["identical"] is True
    assert Image.open(out).tobytes() == Image.open(again).tobytes()
    other = tmp_path / "other.png"
    Image.open(photo).rotate(90).save(other)
    assert main(["replay", str(out), "-o", str(tmp_path / "x.png"), "--image", str(other), *base]) == 2
    assert "not the one this result was made from" in capsys.readouterr().err


# --- one request, every front end ----------------------------------------------------------------
def test_cli_python_and_api_give_the_same_bytes(
    engine: Engine, tiny_model_dir: Path, photo: Path, mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    request = SwapRequest(str(photo), faces=(FaceRequest(0),), settings=FAST, mask=str(mask_file))
    from_python = engine.run(request)
    request_file = tmp_path / "request.json"
    request_file.write_text(request.to_json())
    out = tmp_path / "cli.png"
    assert main(["swap", "--request", str(request_file), "-o", str(out), "--base", str(tiny_model_dir)]) == 0
    capsys.readouterr()
    from_cli = json.loads(png_metadata(out)["parameters"])
    public = Engine(engine.model, lora_dir=engine.loras.folder, allow_paths=False)
    public._pipeline = engine.pipeline  # the same resident model, as the app would hold it
    path, from_api = SwapHandlers(public).api_request(
        json.dumps({k: v for k, v in request.to_dict().items() if k not in ("image", "mask")}),
        str(photo),
        str(mask_file),
        progress=None,
    )
    pixels = from_python.image.tobytes()
    assert Image.open(out).tobytes() == pixels == Image.open(path).tobytes()
    python_record = public_record(json.loads(json.dumps(from_python.record)))  # the app shows no server path
    for record in (from_cli, from_api):
        assert _without_timings(public_record(record)) == _without_timings(python_record)


def test_the_api_takes_no_file_from_the_json(engine: Engine, photo: Path) -> None:
    public = Engine(engine.model, lora_dir=engine.loras.folder, allow_paths=False)
    public._pipeline = engine.pipeline
    handlers = SwapHandlers(public)
    with pytest.raises(Exception, match="not found"):  # a LoRA path is a name like any other: not in the list
        handlers.api_request(json.dumps({"settings": {"lora": "/etc/passwd", "steps": 4}}), str(photo), progress=None)
    path, record = handlers.api_request(
        json.dumps({"mask": "/etc/passwd", "settings": {"steps": 4, "seed": 1}}), str(photo), progress=None
    )
    assert record["request"]["mask"] is None and record["faces"][0]["mask"] == "auto"  # the JSON's file was ignored


# --- the landmark backend, per call ---------------------------------------------------------------
def test_each_request_chooses_its_landmark_backend(engine: Engine, photo: Path) -> None:
    """Two requests to one engine, one per backend: each plans the mask its backend gives, and says so."""
    masks = {}
    for backend in ("mediapipe", "dlib"):
        request = SwapRequest.from_json(json.dumps({"image": str(photo), "landmarks": backend}))
        assert request.landmarks == backend and SwapRequest.from_json(request.to_json()) == request
        chosen = np.asarray(engine.plan(request).regions[0].mask)
        own = Engine(engine.model, lora_dir=engine.loras.folder, landmarks=backend)  # the backend as --landmarks
        assert np.array_equal(chosen, np.asarray(own.plan(SwapRequest(str(photo))).regions[0].mask))
        masks[backend] = chosen
    assert not np.array_equal(masks["mediapipe"], masks["dlib"])  # the two backends really differ here
    default = np.asarray(engine.plan(SwapRequest(str(photo))).regions[0].mask)
    assert engine.landmarks == "mediapipe" and np.array_equal(default, masks["mediapipe"])  # default unchanged
    public = Engine(engine.model, lora_dir=engine.loras.folder, allow_paths=False)
    public._pipeline = engine.pipeline
    _, record = SwapHandlers(public).api_request(
        json.dumps({"landmarks": "dlib", "settings": {"steps": 4, "seed": 1}}), str(photo), progress=None
    )
    assert record["landmarks"] == "dlib" and record["request"]["landmarks"] == "dlib"


def test_an_optional_backend_that_is_not_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "face_alignment" else real(name))
    with pytest.raises(SettingsError, match="'face-alignment' is not installed here") as caught:
        SwapRequest.from_json('{"image": "a.png", "landmarks": "face-alignment"}')
    assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError, match="landmarks must be one of mediapipe, dlib, got 'x'"):
        SwapRequest("a.png", landmarks="x").validate()


# --- plug-ins ------------------------------------------------------------------------------------
class Brighter(Contribution):
    """A conditioning added from this file alone: it shifts the guidance and says so in the record."""

    def __init__(self, amount: float) -> None:
        self.amount = amount

    @contextmanager
    def applied(self, pipeline: Any, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        yield {"guidance_scale": call["guidance_scale"] + self.amount}

    def record(self) -> dict[str, Any]:
        return {"brighter": self.amount}


class BrighterConditioning:
    name = "brighter"

    def validate(self, options: Any) -> None:
        if not isinstance(options, dict) or not isinstance(options.get("amount"), int | float):
            raise SettingsError("brighter: give an amount")

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution | None:
        options = settings.extras.get(self.name)
        return None if options is None else Brighter(float(options["amount"]))


def test_a_conditioning_plugs_in_from_outside_the_library(engine: Engine, photo: Path, mask_file: Path) -> None:
    plain = engine.run(SwapRequest(str(photo), settings=FAST, mask=str(mask_file)))
    with_plugin = Engine(engine.model, lora_dir=engine.loras.folder)
    with_plugin._pipeline = engine.pipeline
    with_plugin.conditionings.append(BrighterConditioning())
    same = with_plugin.run(SwapRequest(str(photo), settings=FAST, mask=str(mask_file)))
    assert same.image.tobytes() == plain.image.tobytes() and "brighter" not in same.record["faces"][0]
    text = SwapRequest(str(photo), settings=replace(FAST, extras={"brighter": {"amount": 5}}), mask=str(mask_file))
    steered = with_plugin.run(SwapRequest.from_json(text.to_json()))
    assert steered.record["faces"][0]["brighter"] == 5.0
    assert steered.image.tobytes() != plain.image.tobytes()  # the call really changed
    with pytest.raises(SettingsError, match="unknown conditioning"):
        engine.run(SwapRequest(str(photo), settings=replace(FAST, extras={"brighter": {"amount": 5}})))
    with pytest.raises(SettingsError, match="give an amount"):
        with_plugin.run(SwapRequest(str(photo), settings=replace(FAST, extras={"brighter": {}})))
