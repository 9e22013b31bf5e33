"""The app's handlers called directly (no server, no browser) on the tiny model, and the flag parsing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.errors import NoFaceError
from faceswap_core.faces.detect import find_face
from faceswap_core.faces.masks import face_mask
from faceswap_core.images import png_metadata
from faceswap_core.settings import SEARCH_STRENGTHS, STEPS, SwapSettings
from faceswap_core.ui.common import editor_mask, editor_value, mask_layer, on_gpu, user_errors
from faceswap_core.ui.config import DEFAULT_PORT, parse_config
from faceswap_core.ui.demo import ModelLoader, create_demo
from faceswap_core.ui.swap import NO_LORA, SwapHandlers, lora_choices, parse_strengths, refresh_lora_picker
from faceswap_core.ui.train import TrainHandlers

FAST = {"steps": 4, "guidance": 5.0, "seed": 3}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    lora_dir = tmp_path_factory.mktemp("ui-loras")
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    return Engine(str(tiny_model_dir), device="cpu", lora_dir=str(lora_dir))


@pytest.fixture(scope="module")
def swap(engine: Engine) -> SwapHandlers:
    return SwapHandlers(engine)


def generate(swap: SwapHandlers, value: dict, **changes: object) -> tuple:
    args = {
        "face_index": 0,
        "size_from_face": True,
        "grow": 4,
        "feather": 6,
        "lora": NO_LORA,
        "lora_scale": 1.0,
        "prompt": "a photo of a woman face",
        "negative": "",
        "strength": 0.5,
        "padding": 0.6,
        "color_match": True,
        **FAST,
        **changes,
    }
    return swap.generate(value, **args)


# --- configuration ------------------------------------------------------------------------------
def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    assert parse_config([], {}).port == DEFAULT_PORT
    env = {
        "FACESWAP_BASE_MODEL": "/models/a",
        "FACESWAP_PORT": "9000",
        "FACESWAP_LOW_VRAM": "1",
        "FACESWAP_HOST": "0.0.0.0",
    }
    config = parse_config([], env)
    assert (config.base_model, config.port, config.low_vram, config.host) == ("/models/a", 9000, True, "0.0.0.0")
    config = parse_config(["--base", "/models/b", "--port", "7000", "--lora-dir", "x", "--share"], env)
    assert (config.base_model, config.port, config.lora_dir, config.share) == ("/models/b", 7000, "x", True)
    assert parse_config([], {"GRADIO_SERVER_NAME": "0.0.0.0"}).host == "0.0.0.0"  # what Spaces set


def test_base_config_for_a_single_file_base_from_flag_or_environment() -> None:
    assert parse_config([], {}).base_config is None
    env = {"FACESWAP_BASE_MODEL": "/models/sdxl.safetensors", "FACESWAP_BASE_CONFIG": "/models/sdxl-configs"}
    assert parse_config([], env).base_config == "/models/sdxl-configs"
    assert parse_config(["--base-config", "/other"], env).base_config == "/other"


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


def test_find_faces_hides_thumbnails_for_one_face(swap: SwapHandlers, astronaut: Image.Image) -> None:
    choice, gallery, note = swap.find_faces({"background": astronaut.convert("RGBA"), "layers": []})
    assert choice.choices == [("Face 1 (largest)", 0)]
    assert gallery.visible is False
    assert "1 face found" in note


def test_several_faces_give_thumbnails_to_choose_from(swap: SwapHandlers, astronaut: Image.Image) -> None:
    pair = Image.new("RGB", (astronaut.width * 2, astronaut.height))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut.resize((400, 400)), (astronaut.width + 50, 50))
    choice, gallery, note = swap.find_faces({"background": pair, "layers": []})
    assert [value for _, value in choice.choices] == [0, 1]
    assert gallery.visible is True and len(gallery.value) == 2
    second, choice, *_ = swap.auto_mask({"background": pair, "layers": []}, 1, True, 4, 6)
    assert choice.value == 1
    x0, _, x1, _ = editor_mask(second).getbbox()
    assert x0 > astronaut.width  # the mask covers the chosen (smaller, right-hand) face


def test_no_face_explains_what_to_do(swap: SwapHandlers) -> None:
    blank = Image.new("RGB", (200, 160), (120, 130, 140))
    *_, note = swap.find_faces({"background": blank, "layers": []})
    assert "Paint over the area" in note
    with pytest.raises(gr.Error, match="no face found"):
        swap.auto_mask({"background": blank, "layers": []}, 0, True, 4, 6)
    with pytest.raises(gr.Error, match="Upload a target photo"):
        swap.auto_mask(None, 0, True, 4, 6)


def test_auto_mask_fills_the_layer_with_the_landmark_mask(swap: SwapHandlers, astronaut: Image.Image) -> None:
    start = {"background": astronaut.convert("RGBA"), "layers": [], "composite": None}
    value, _, _, grow, feather, note = swap.auto_mask(start, 0, False, 10, 5)
    expected = np.asarray(face_mask(astronaut.size, find_face(astronaut), grow=10, feather=5), dtype=int)
    assert value["background"].size == astronaut.size and (grow, feather) == (10, 5)
    assert np.abs(np.asarray(editor_mask(value), dtype=int) - expected).max() <= 1
    assert "1 face found" in note
    _, _, _, grow, feather, _ = swap.auto_mask(start, 0, True, 10, 5)
    assert (grow, feather) == SwapHandlers.auto_mask_sizes(find_face(astronaut)) and grow > 0 and feather > 0


# --- generating ---------------------------------------------------------------------------------
def test_generate_returns_before_after_and_a_full_size_png_with_parameters(
    swap: SwapHandlers, astronaut: Image.Image
) -> None:
    mask = Image.new("L", astronaut.size, 0)
    mask.paste(255, (200, 80, 320, 240))
    (before, after), download, record = generate(swap, editor_value(astronaut, mask))
    assert before.size == after.size == astronaut.size
    assert record["seed"] == 3 and record["mask"] == "given"
    saved = Path(download.value["path"])
    assert Image.open(saved).size == astronaut.size
    assert json.loads(png_metadata(saved)["parameters"])["seed"] == 3
    outside = np.asarray(mask) == 0
    assert np.array_equal(np.asarray(after)[outside], np.asarray(astronaut)[outside])


def test_generate_without_paint_uses_the_automatic_mask(swap: SwapHandlers, astronaut: Image.Image) -> None:
    (_, after), _, record = generate(swap, {"background": astronaut, "layers": []}, seed=-1)
    assert record["mask"] == "auto" and after.size == astronaut.size
    assert isinstance(record["seed"], int)  # a random seed, recorded


def test_library_errors_become_gr_error_with_the_same_message(swap: SwapHandlers, astronaut: Image.Image) -> None:
    with pytest.raises(gr.Error, match="steps x strength must be at least 1"):
        generate(swap, {"background": astronaut, "layers": []}, steps=STEPS.minimum, strength=0.5)
    with pytest.raises(gr.Error, match="LoRA 'nobody' not found"):
        generate(swap, {"background": astronaut, "layers": []}, lora="nobody")
    with pytest.raises(gr.Error, match="Upload a target photo"):
        generate(swap, None)

    @user_errors
    def fails() -> None:
        raise NoFaceError("photo.jpg: no face found")

    with pytest.raises(gr.Error) as caught:
        fails()
    assert caught.value.message == "photo.jpg: no face found"


def test_try_strengths_ranks_candidates_by_identity_distance(
    swap: SwapHandlers, astronaut: Image.Image, tmp_path: Path
) -> None:
    reference = tmp_path / "me.png"
    astronaut.save(reference)
    common = {
        "face_index": 0,
        "size_from_face": True,
        "grow": 4,
        "feather": 6,
        "lora": NO_LORA,
        "lora_scale": 1.0,
        "prompt": "",
        "negative": "",
    }
    gallery, candidates, note, (before, best), download, record = swap.try_strengths(
        {"background": astronaut, "layers": []},
        **common,
        padding=0.6,
        color_match=True,
        strengths_text="0.3, 0.6",
        references=[str(reference)],
        **FAST,
    )
    assert len(gallery) == len(candidates) == 2
    distances = [c["record"]["identity_distance"] for c in candidates]
    assert all(d is not None for d in distances) and distances == sorted(distances)
    assert "strength" in gallery[0][1] and "distance" in gallery[0][1]
    assert "Ranked" in note and record["rank"] == 0 and best.size == astronaut.size
    picked = swap.show_candidate({"background": astronaut}, candidates, SimpleNamespace(index=1))
    assert picked[2] == candidates[1]["record"]


def test_strength_list_parsing() -> None:
    assert parse_strengths("0.3, 0.45 0.6") == [0.3, 0.45, 0.6]
    assert parse_strengths("  ") == list(SEARCH_STRENGTHS)
    with pytest.raises(Exception, match="not a number"):
        parse_strengths("0.3, lots")


# --- LoRAs --------------------------------------------------------------------------------------
def test_lora_picker_lists_none_first_and_sees_new_loras(engine: Engine, tiny_model_dir: Path) -> None:
    assert lora_choices(engine)[0][1] == NO_LORA and ("alice", "alice") in lora_choices(engine)
    make_test_lora(tiny_model_dir, engine.loras.folder / "carol", seed=3)
    picker = refresh_lora_picker(engine, "alice", select="carol")
    assert ("carol", "carol") in picker.choices and picker.value == "carol"
    assert refresh_lora_picker(engine, "gone").value == NO_LORA


def test_describe_lora_follows_the_class_word(swap: SwapHandlers, engine: Engine) -> None:
    folder = engine.loras.folder / "dave"
    make_test_lora(engine.base_model, folder, seed=4)
    (folder / "training.json").write_text(json.dumps({"class_word": "man", "base_model": "other/model"}))
    text, prompt = swap.describe_lora("dave", SwapSettings().prompt)
    assert "a man" in text and "other/model" in text and prompt == "a photo of a man face"
    assert swap.describe_lora("dave", "my own prompt")[1] == "my own prompt"


# --- training -----------------------------------------------------------------------------------
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
    assert list(losses["step"]) == [1, 2] and len(samples) == 2
    assert picker.value == "new_person" and ("new_person/checkpoint-1", "new_person/checkpoint-1") in picker.choices
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
    broken = Engine(str(tmp_path / "no-such-model"), device="cpu", lora_dir=str(tmp_path))
    loader = ModelLoader(broken)
    loader._load()
    assert loader.done and "could not be loaded" in loader.message() and "--base" in loader.message()
    assert "no-such-model" in loader.message() and str(tmp_path) not in loader.message()  # no server paths
    demo = create_demo(broken, load_model=False)
    assert isinstance(demo, gr.Blocks)
    handlers = SwapHandlers(broken)
    value = handlers.auto_mask({"background": astronaut, "layers": []}, 0, True, 4, 6)[0]
    assert editor_mask(value) is not None
    with pytest.raises(gr.Error, match="no-such-model"):
        generate(handlers, value)


def test_cancel_stops_training_and_says_so(engine: Engine, photos: list[str], tmp_path: Path) -> None:
    handlers = TrainHandlers(engine, tmp_path)
    _, rows, _, dataset = handlers.prepare(photos[:1], "woman")
    session = SimpleNamespace(session_hash="s2")
    run = handlers.train(dataset, rows, "cancelled", "woman", 200, 2, 1e-4, 100, 64, NO_LORA, session)
    next(run)  # the worker has started
    assert handlers.cancel(session) == "Stopping after the current step…"
    status, *_ = list(run)[-1]
    assert status.startswith("Cancelled after")
    assert handlers.cancel(session) == "No training is running."


def test_strength_ranking_falls_back_to_the_loras_training_photos(
    swap: SwapHandlers, engine: Engine, astronaut: Image.Image
) -> None:
    folder = engine.loras.folder / "erin"
    make_test_lora(engine.base_model, folder, seed=5)
    photo = folder / "photo.png"
    astronaut.save(photo)
    (folder / "training.json").write_text(json.dumps({"reference_photos": [str(photo), str(folder / "gone.png")]}))
    assert swap.reference_photos(None, "erin") == ([str(photo)], "training photos of the LoRA")
    assert swap.reference_photos(["/x/up.jpg"], "erin") == (["/x/up.jpg"], "uploaded reference photos")
    assert swap.reference_photos(None, NO_LORA) == ([], "")


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
