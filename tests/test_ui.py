"""The app's handlers called directly (no server, no browser) on the tiny model, and the flag parsing."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.face_choice import NO_LORA
from faceswap_core.faces.detect import find_face
from faceswap_core.faces.masks import face_mask
from faceswap_core.settings import ModelSpec
from faceswap_core.ui.common import editor_mask, editor_value, mask_layer, on_gpu
from faceswap_core.ui.config import DEFAULT_PORT, parse_config
from faceswap_core.ui.demo import ModelLoader, create_demo
from faceswap_core.ui.swap_handlers import SwapHandlers
from faceswap_core.ui.train import STOPPING, TrainHandlers


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    lora_dir = tmp_path_factory.mktemp("ui-loras")
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=str(lora_dir))


@pytest.fixture(scope="module")
def swap(engine: Engine) -> SwapHandlers:
    return SwapHandlers(engine)


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    assert parse_config([], {}).port == DEFAULT_PORT
    env = {
        "FACESWAP_BASE_MODEL": "/models/a",
        "FACESWAP_PORT": "9000",
        "FACESWAP_LOW_VRAM": "1",
        "FACESWAP_HOST": "0.0.0.0",
    }
    config = parse_config([], env)
    assert (config.model.base, config.port, config.model.low_vram, config.host) == ("/models/a", 9000, True, "0.0.0.0")
    config = parse_config(["--base", "/models/b", "--port", "7000", "--lora-dir", "x", "--share"], env)
    assert (config.model.base, config.port, config.lora_dir, config.share) == ("/models/b", 7000, "x", True)
    assert parse_config([], {"GRADIO_SERVER_NAME": "0.0.0.0"}).host == "0.0.0.0"  # what Spaces set


def test_landmarks_from_flag_or_environment() -> None:
    assert parse_config([], {}).landmarks == "mediapipe"
    assert parse_config([], {"FACESWAP_LANDMARKS": "dlib"}).landmarks == "dlib"
    assert parse_config(["--landmarks", "mediapipe"], {"FACESWAP_LANDMARKS": "dlib"}).landmarks == "mediapipe"
    with pytest.raises(SystemExit, match="FACESWAP_LANDMARKS='insightface'"):
        parse_config([], {"FACESWAP_LANDMARKS": "insightface"})
    with pytest.raises(SettingsError, match="landmarks must be one of"):
        Engine("any/model", landmarks="insightface")


def test_base_config_for_a_single_file_base_from_flag_or_environment() -> None:
    assert parse_config([], {}).model.base_config is None
    env = {"FACESWAP_BASE_MODEL": "/models/sdxl.safetensors", "FACESWAP_BASE_CONFIG": "/models/sdxl-configs"}
    assert parse_config([], env).model.base_config == "/models/sdxl-configs"
    assert parse_config(["--base-config", "/other"], env).model.base_config == "/other"
    assert parse_config([], {"FACESWAP_VQA_MODEL": "/models/blip"}).vqa_model == "/models/blip"
    assert parse_config(["--vqa-model", "/other"], {}).vqa_model == "/other"


@pytest.mark.parametrize("env", [{"FACESWAP_PORT": "http"}, {"FACESWAP_SHARE": "maybe"}])
def test_bad_environment_values_are_one_line_errors(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="FACESWAP_"):
        parse_config([], env)


# --- the mask layer -----------------------------------------------------------------------------
def test_mask_layer_round_trips_through_the_editor_value(astronaut: Image.Image) -> None:
    face = find_face(astronaut)
    mask = face_mask(astronaut.size, face)
    value = editor_value(astronaut, mask)
    assert value["layers"][0].mode == "RGBA" and value["layers"][0].getchannel("A").getextrema()[1] <= 128
    back = np.asarray(editor_mask(value), dtype=int)
    assert np.abs(back - np.asarray(mask, dtype=int)).max() <= 1
    assert editor_mask({"background": astronaut, "layers": [mask_layer(Image.new("L", (8, 8)))]}) is None
    assert editor_mask({"background": astronaut, "layers": []}) is None


def test_brush_strokes_at_half_opacity_count_as_fully_masked() -> None:
    layer = np.zeros((10, 10, 4), np.uint8)
    layer[2:5, 2:5] = (0, 110, 255, 128)
    mask = np.asarray(editor_mask({"background": None, "layers": [Image.fromarray(layer, "RGBA")]}))
    assert mask[3, 3] == 255 and mask[0, 0] == 0


@pytest.fixture(scope="module")
def photos(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, angle in enumerate((0, 8)):
        path = folder / f"photo{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        paths.append(str(path))
    blank = folder / "blank.png"
    Image.new("RGB", (120, 120), "gray").save(blank)
    return [*paths, str(blank)]


def test_prepare_shows_crops_captions_and_skipped_photos(engine: Engine, photos: list[str], tmp_path: Path) -> None:
    handlers = TrainHandlers(engine, tmp_path)
    gallery, rows, note, dataset = handlers.prepare(photos, "woman")
    assert len(gallery) == 2 and [row[0] for row in rows] == ["photo0.png", "photo1.png"]
    assert rows[0][1] == "a photo of a woman face"
    assert "2 photo(s) ready" in note and "blank.png" in note
    assert Path(dataset, "metadata.csv").is_file()


def test_train_streams_progress_and_refreshes_the_picker(engine: Engine, photos: list[str], tmp_path: Path) -> None:
    handlers = TrainHandlers(engine, tmp_path)
    _, rows, _, dataset = handlers.prepare(photos[:2], "woman")
    rows[0][1] = "a photo of a woman face, smiling"
    updates = list(
        handlers.train(
            dataset, rows, "new person", "woman", 2, 2, 1e-4, 1, 64, NO_LORA, SimpleNamespace(session_hash="s1")
        )
    )
    status, losses, samples, picker = updates[-1]
    assert "new_person" in status and "ready" in status
    assert list(losses[losses["series"] == "raw"]["step"]) == [1, 2] and len(samples) == 2
    assert picker.value == "new_person" and "new_person/checkpoint-1" in [value for _, value in picker.choices]
    assert "smiling" in (Path(dataset) / "metadata.csv").read_text()
    assert handlers.cancel(SimpleNamespace(session_hash="s1")) == "No training is running."


def test_train_refuses_edited_captions_that_name_unknown_files(
    engine: Engine, photos: list[str], tmp_path: Path
) -> None:
    handlers = TrainHandlers(engine, tmp_path)
    _, rows, _, dataset = handlers.prepare(photos[:1], "woman")
    with pytest.raises(gr.Error, match="not one of the prepared photos"):
        list(handlers.train(dataset, [["../x.png", "a"]], "x", "woman", 2, 2, 1e-4, 1, 64, "", SimpleNamespace()))
    with pytest.raises(gr.Error, match="Upload photos"):
        list(handlers.train(None, rows, "x", "woman", 2, 2, 1e-4, 1, 64, "", SimpleNamespace()))


# --- the page -----------------------------------------------------------------------------------
def test_a_missing_base_model_is_explained_and_mask_tools_still_work(tmp_path: Path, astronaut: Image.Image) -> None:
    broken = Engine(ModelSpec(str(tmp_path / "no-such-model"), device="cpu"), lora_dir=str(tmp_path), allow_paths=False)
    loader = ModelLoader(broken)
    loader._load()
    assert loader.done and "could not be loaded" in loader.message() and "--base" in loader.message()
    assert "no-such-model" in loader.message() and str(tmp_path) not in loader.message()  # no server paths
    demo = create_demo(broken, load_model=False)
    assert isinstance(demo, gr.Blocks)
    handlers = SwapHandlers(broken)
    path = tmp_path / "photo.png"
    astronaut.save(path)
    _, value, *_ = handlers.load_photo(str(path), NO_LORA, 0.5, "")
    assert editor_mask(value) is not None  # the automatic mask is painted without the model
    fields = {"editor": editor_value(astronaut, editor_mask(value)), "person": NO_LORA, "strength": 0.5}
    with pytest.raises(gr.Error, match="no-such-model"):
        handlers.generate({**fields, "steps": 4, "seed": 1})


def test_cancel_stops_training_and_says_so(engine: Engine, photos: list[str], tmp_path: Path) -> None:
    handlers = TrainHandlers(engine, tmp_path)
    _, rows, _, dataset = handlers.prepare(photos[:1], "woman")
    session = SimpleNamespace(session_hash="s2")
    run = handlers.train(dataset, rows, "cancelled", "woman", 200, 2, 1e-4, 100, 64, NO_LORA, session)
    while not str(next(run)[0]).startswith("Training"):  # until the steps run
        pass
    assert handlers.cancel(session) == STOPPING  # what the page shows at once
    statuses = [update[0] for update in run]
    assert statuses[-1].startswith("Cancelled after")
    # until the run has ended, the stream says it is stopping, never "Training ..." again
    shown = [text for text in statuses[:-1] if isinstance(text, str)]
    assert shown and all(text == STOPPING for text in shown)
    assert handlers.cancel(session) == "No training is running."


def test_gpu_functions_are_wrapped_for_zerogpu_only_when_spaces_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler() -> str:
        return "done"

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert on_gpu(handler) is handler
    fake = ModuleType("spaces")
    fake.GPU = lambda fn=None, duration=None: (lambda f: ("wrapped", duration, f)) if fn is None else ("wrapped", fn)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert on_gpu(handler) == ("wrapped", handler)
    assert on_gpu(handler, duration=60) == ("wrapped", 60, handler)


def test_ray_flags_from_flag_or_environment_and_ray_stays_unimported() -> None:
    import subprocess
    import sys

    env = {"FACESWAP_RAY_ADDRESS": "ray://head:10001", "FACESWAP_RAY_MAX_REPLICAS": "4"}
    config = parse_config([], env)
    assert (config.ray, config.ray_min_replicas, config.ray_max_replicas) == ("ray://head:10001", 1, 4)
    assert parse_config(["--ray", "local", "--ray-min-replicas", "2", "--ray-max-replicas", "2"], {}).ray == "local"
    assert parse_config([], {}).ray is None
    with pytest.raises(SystemExit):
        parse_config(["--ray", "local", "--ray-min-replicas", "3", "--ray-max-replicas", "2"], {})
    code = "import sys, app, faceswap_core.cli; faceswap_core.cli.build_parser(); print('ray' in sys.modules)"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "False"  # Ray is imported only when --ray is given
