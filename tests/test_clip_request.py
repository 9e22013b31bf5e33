"""A clip's swap as one request: JSON round trip, hostile JSON, one person per face, and the same frames
whether the CLI (``video --request``), the app's ``/swap_video``, the Video tab's form or Python sends it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image
from video_factory import around_face, camera_move, face_patch, write_clip

from faceswap_core.cli import main
from faceswap_core.clip_request import ClipRequest, plan_clip
from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.media import probe, read_frames
from faceswap_core.people import People
from faceswap_core.requests import FaceRequest, SwapRequest
from faceswap_core.settings import SwapSettings
from faceswap_core.ui.video import VideoHandlers
from faceswap_core.video import swap_clip, track_seed

QUICK = SwapSettings(steps=3, strength=0.4, seed=5)


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("people")
    make_test_lora(tiny_model_dir, root / "alice", seed=1)
    make_test_lora(tiny_model_dir, root / "bob", seed=2)
    return root


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, lora_dir: Path) -> Engine:
    return Engine(str(tiny_model_dir), lora_dir=lora_dir, allow_paths=False)  # as the app


@pytest.fixture(scope="module")
def clip(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = camera_move(around_face(astronaut, 1.3), 4, size=128, kind="zoom")
    return write_clip(tmp_path_factory.mktemp("clip") / "zoom.mp4", frames)


@pytest.fixture(scope="module")
def pair_clip(astronaut: Image.Image, seed_targets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two faces side by side, still: the astronaut (the larger, face 0) and a shared target's."""
    other = Image.open(next(iter(seed_targets.values()))).convert("RGB")
    canvas = np.full((160, 320, 3), 90, dtype=np.uint8)
    canvas[10:150, 10:150] = face_patch(astronaut, 140)
    canvas[20:140, 190:310] = face_patch(other, 120)
    return write_clip(tmp_path_factory.mktemp("pair") / "pair.mp4", [canvas] * 3, audio=False)


def frames_of(path: Path) -> list[np.ndarray]:
    return [frame.pixels for frame in read_frames(probe(path))]


def test_json_round_trip_keeps_every_field(clip: Path) -> None:
    request = ClipRequest(
        SwapRequest(str(clip), faces=(FaceRequest(0, person="alice"), FaceRequest(1, strength=0.3)), settings=QUICK),
        pick_s=0.5,
        temporal_blend=0.2,
        detect_every=2,
        max_gap_s=1.0,
    ).validate()
    data = json.loads(request.to_json())
    assert data["clip"] == str(clip) and "image" not in data and "mask" not in data
    assert ClipRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown field"),
        ({"mask": "m.png"}, "takes no 'mask'"),
        ({"image": "x.png"}, "takes no 'image'"),
        ({"pick_s": "soon"}, "pick_s must be a number"),
        ({"pick_s": -1}, "0 s or later"),
        ({"detect_every": 2.5}, "detect_every must be a whole number"),
        ({"temporal_blend": 5}, "temporal blend must be between"),
        ({"faces": [{"face": 0}] * 500}, "at most"),
        ({"faces": [{"face": None}]}, "a number on the picked frame"),
        ({"faces": [{"face": "reference"}, {"face": 1}], "reference_face": "me.jpg"}, "reference photo alone"),
        ({"faces": [{"face": "reference"}]}, "needs a reference photo"),
        ({"settings": {"seed": -3}}, "seed"),
    ],
)
def test_hostile_json_is_one_clear_error(clip: Path, change: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ClipRequest.from_dict({"clip": str(clip), **change})


def test_each_face_of_a_clip_gets_its_own_person(engine: Engine, pair_clip: Path, tmp_path: Path) -> None:
    def run(first: str, second: str) -> list[np.ndarray]:
        faces = (FaceRequest(0, person=first), FaceRequest(1, person=second))
        request = ClipRequest(SwapRequest(str(pair_clip), faces=faces, settings=QUICK), temporal_blend=0.0)
        settings = plan_clip(request, People(engine.loras), lambda: 2)
        out = tmp_path / f"{first}-{second}.mkv"  # lossless: the faces' pixels compare exactly
        job = swap_clip(engine, pair_clip, out, settings, job_folder=tmp_path / f"{first}-{second}.job")
        assert job.state.seeds == [track_seed(5, 0), track_seed(5, 1)]  # as with one person for both
        return frames_of(out)

    pair, alices, bobs = run("alice", "bob"), run("alice", "alice"), run("bob", "bob")
    original = frames_of(pair_clip)[0]
    left, right = (slice(10, 150), slice(10, 150)), (slice(20, 140), slice(190, 310))
    # face 0 as when both are alice (it is repainted first), not as when both are bob; face 1 is bob's
    assert np.array_equal(pair[0][left], alices[0][left]) and not np.array_equal(pair[0][left], bobs[0][left])
    assert not np.array_equal(pair[0][right], alices[0][right])
    assert not np.array_equal(pair[0][left], original[left]) and not np.array_equal(pair[0][right], original[right])


def test_all_faces_of_a_clip_counts_them_on_the_picked_frame(engine: Engine, pair_clip: Path) -> None:
    request = ClipRequest(SwapRequest(str(pair_clip), faces=(FaceRequest("all", person="bob"),), settings=QUICK))
    settings = plan_clip(request, People(engine.loras), lambda: 2)
    assert settings.faces == (0, 1) and settings.swap.lora is not None and settings.face_swaps == ()
    with pytest.raises(SettingsError, match="no face"):
        plan_clip(request, People(engine.loras), lambda: 0)


def test_cli_api_page_and_python_give_the_same_clip(
    engine: Engine, clip: Path, tiny_model_dir: Path, lora_dir: Path, tmp_path: Path
) -> None:
    text = json.dumps({"faces": [{"face": 0}], "person": "alice", "settings": {"strength": 0.3, "seed": 5}})
    handlers = VideoHandlers(engine)
    quiet = lambda *args, **kwargs: None  # noqa: E731
    api_out, _, _ = handlers.api_run(str(clip), text, None, quiet)
    page_out, _, _ = handlers.run(str(clip), ["1"], 0, "alice", None, 0.3, 5, False, progress=quiet)
    assert page_out == api_out  # the same request: the same job, found finished

    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({**json.loads(text), "clip": str(clip)}))
    cli_out, saved = tmp_path / "cli.mp4", tmp_path / "saved.json"
    args = ["video", "--request", str(request_file), "-o", str(cli_out), "--save-request", str(saved)]
    assert main([*args, "--base", str(tiny_model_dir), "--lora-dir", str(lora_dir)]) == 0
    assert ClipRequest.from_json(saved.read_text()) == ClipRequest.from_json(request_file.read_text())

    request = ClipRequest.from_json(text, files={"clip": str(clip)})
    python_out = tmp_path / "python.mp4"
    settings = plan_clip(request, People(engine.loras), lambda: 1)
    swap_clip(engine, clip, python_out, settings, job_folder=tmp_path / "python.job")
    expected = frames_of(python_out)
    for other in (Path(api_out), cli_out):
        assert all(np.array_equal(a, b) for a, b in zip(frames_of(other), expected, strict=True))
    assert cli_out.read_bytes() == python_out.read_bytes() == Path(api_out).read_bytes()
