"""Issue 21 without a browser: a person's own class word, fields named in messages, progress wording, and
the Train tab's Person picker that only reloads on a real change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from faceswap_core.captions import template_caption
from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.face_choice import NO_LORA, default_prompt
from faceswap_core.identity_adapter import save_tiny_ip_adapter
from faceswap_core.models import ModelSpec
from faceswap_core.people import People
from faceswap_core.ui import guards, newcomer
from faceswap_core.ui.progress import LINE_ATTRIBUTE, STARTING, ProgressLine, step_progress
from faceswap_core.ui.swap_faces import SEED
from faceswap_core.ui.swap_handlers import SwapHandlers
from faceswap_core.ui.train import TrainHandlers

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
QUICK = {"steps": 2, "guidance": 5.0, "seed": 3, "lora_scale": 1.0, "negative": "", "padding": 0.6}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"))  # a person from photos needs it
    spec = ModelSpec(str(tiny_model_dir), device="cpu", ip_adapter=str(adapter))
    return Engine(spec, lora_dir=tmp_path_factory.mktemp("newcomer-people"))


@pytest.fixture(scope="module")
def obama() -> list[str]:
    photos = [str(PEOPLE / name) for name in ("obama.jpg", "obama2.jpg")]
    if not all(Path(photo).is_file() for photo in photos):
        pytest.skip("shared photos of people not present")
    return photos


def test_a_person_added_as_a_man_carries_a_mans_prompt(engine: Engine, obama: list[str], astronaut: Any) -> None:
    swap = SwapHandlers(engine)
    picker, *_ = swap.add_person({"photo": None, "new_name": "barack", "new_class_word": "man", "references": obama})
    assert picker.value == "barack"
    assert People(engine.loras).get("barack").class_word == "man"
    assert default_prompt(swap.people, "barack") == template_caption("man") == "a photo of a man face"
    text, prompt_box = swap.describe_lora("barack")
    assert "a man" in text and prompt_box.placeholder == "a photo of a man face"
    # the prompt that runs (and is recorded) is the person's own
    photo, value, *_ = swap._show_photo(astronaut, "barack", 0.5, "")
    fields = {"photo": photo, "editor": value, "face": 0, "person": "barack", "strength": 0.5, "prompt": "", **QUICK}
    _, _, record, *_ = swap.generate(fields)
    assert record["faces"][0]["prompt"] == "a photo of a man face"
    # an API caller that leaves the class word out gets the default; an unknown one is refused, nothing written
    swap.add_person({"photo": None, "new_name": "plain", "references": obama})
    assert People(engine.loras).get("plain").class_word == "woman"
    with pytest.raises(gr.Error, match="must be one of: woman, man, person"):
        swap.add_person({"photo": None, "new_name": "odd", "new_class_word": "robot", "references": obama})
    assert "odd" not in People(engine.loras).names()
    assert default_prompt(swap.people, NO_LORA) == "a photo of a woman face"


def test_a_number_box_names_itself_when_out_of_range(caplog: pytest.LogCaptureFixture) -> None:
    rate = guards.safe_number(gr.Number(minimum=1e-6, maximum=0.01, render=False), "Learning rate")
    with pytest.raises(gr.Error, match="Learning rate must be at most 0.01, got 5"):
        rate.preprocess(5)
    with pytest.raises(gr.Error, match="Learning rate must be at least 1e-06, got 0"):
        rate.preprocess(0)
    assert rate.preprocess(0.001) == 0.001
    assert [record.getMessage() for record in caplog.records if record.name == "faceswap.app"] == [
        "Learning rate: Learning rate must be at most 0.01, got 5",
        "Learning rate: Learning rate must be at least 1e-06, got 0",
    ]
    with pytest.raises(SettingsError, match=r"seed must be between -1 and 4294967295, got 1e\+23"):
        guards.number(1e23, "seed", SEED)


def test_progress_says_how_many_faces_or_strengths_are_done() -> None:
    calls: list[tuple[Any, str]] = []

    class Progress(gr.Progress):
        def __call__(self, value: Any, desc: str | None = None, *args: Any, **kwargs: Any) -> None:
            calls.append((value, desc))

    progress = Progress()
    line = ProgressLine()
    setattr(progress, LINE_ATTRIBUTE, line)
    report = step_progress(progress, "Generating", 2, "faces")
    assert report is not None and line.text == STARTING
    for step in (1, 30, 31, 60):
        report(step, 60)
    assert [desc for _, desc in calls] == [
        "Generating: 0 of 2 faces done",
        "Generating: 1 of 2 faces done",
        "Generating: 1 of 2 faces done",
        "Generating: 2 of 2 faces done",
    ]
    assert line.text.startswith("⏳ Generating: 2 of 2 faces done, step 60 of 60, about 0 s left")
    calls.clear()
    step_progress(progress, "Generating", 1, "faces")(3, 30)  # type: ignore[misc]
    assert calls == [((3, 30), "Generating")] and line.text == "⏳ Generating, step 3 of 30"  # no time yet
    assert step_progress(None, "Generating", 1, "faces") is None


def test_the_train_person_picker_reloads_only_on_a_real_change(engine: Engine) -> None:
    handlers = TrainHandlers(engine)
    assert handlers.load_person("", shown="") == tuple(gr.skip() for _ in range(6))  # opened and closed
    gallery, rows, note, dataset, name, photos = handlers.load_person("", shown="someone")
    assert gallery == [] and rows == [] and dataset is None and photos.value is None


def test_with_fast_on_advanced_says_what_really_runs() -> None:
    steps, guidance = newcomer.fast_truth(True)
    assert not steps.interactive and "4 steps run" in steps.info
    assert not guidance.interactive and "guidance 1 runs" in guidance.info
    steps, guidance = newcomer.fast_truth(False)
    assert steps.interactive and guidance.interactive and "Fast" not in steps.info + guidance.info


def test_no_event_shows_progress_on_the_photo_editor(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Gradio 6 reads back every component that ever showed a loading status on each later status message of
    any event, and reading the ImageEditor uploads its layers again: an event whose progress lands on the
    editor, or on a block around it, made one Generate upload the photo hundreds of times (issue 21)."""
    from faceswap_core.ui.demo import create_demo

    app_engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=tmp_path, allow_paths=False)
    config = create_demo(app_engine, load_model=False).get_config_file()
    parents: dict[int, int] = {}

    def walk(node: dict[str, Any]) -> None:
        for child in node.get("children") or []:
            parents[child["id"]] = node["id"]
            walk(child)

    walk(config["layout"])
    [editor] = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "target"]
    around = {editor}
    while editor in parents:
        editor = parents[editor]
        around.add(editor)
    showing = [
        dependency.get("api_name") or dependency["id"]
        for dependency in config["dependencies"]
        if around & set(dependency.get("show_progress_on") or dependency["outputs"])
    ]
    assert not showing, f"events whose progress lands on the photo editor: {showing}"


@pytest.fixture(scope="module")
def two_faces(obama: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """obama.jpg and biden.jpg side by side (a photo with two faces), and the other photo of Biden."""
    from PIL import Image

    left, right = (Image.open(PEOPLE / name).convert("RGB") for name in ("obama.jpg", "biden.jpg"))
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    path = tmp_path_factory.mktemp("two-faces") / "both.jpg"
    both.save(path)
    return path, [str(PEOPLE / "biden2.jpg")]


def test_adding_a_second_person_leaves_face_1_or_says_so(engine: Engine, two_faces: tuple[Path, list[str]]) -> None:
    """Photos uploaded for face 2 steer face 1 too while they are there (the summary says so); once they are
    added as a person on face 2, face 1 is as before. Adding on face 1 again says whom it replaced."""
    swap = SwapHandlers(engine)
    path, biden = two_faces
    photo, value, *_ = swap.load_photo(str(path), NO_LORA, 0.5, "")
    assert photo.choices[0].person == NO_LORA and len(photo.faces) == 2
    fields = {"photo": photo, "editor": value, "face": 1, "person": "__keep__", "strength": 0.6, "prompt": ""}
    fields.update(size_from_face=True, grow=0, feather=0, occlusion=False)
    _, _, said = swap.photos_changed({**fields, "references": biden})
    assert "1: **a new face** (0.5, likeness" in said  # face 1 takes them too, and the summary says it
    added = swap.add_person({**fields, "references": biden, "new_name": "biden-two", "new_class_word": "man"})
    summary, note = added[3], added[4]
    assert (photo.choices[0].person, photo.choices[0].strength, photo.choices[0].likeness or 0.0) == ("", 0.5, 0.0)
    assert photo.choices[1].person == "biden-two" and "1: **a new face** (0.5) · 2: **biden-two**" in summary
    assert "Face 2 → biden-two." in note
    fields.update(face=0, editor=added[2])  # the face list still on face 1: the next person replaces face 1's
    added = swap.add_person({**fields, "references": biden, "new_name": "biden-three", "new_class_word": "man"})
    summary, note = added[3], added[4]
    assert "1: **biden-three** (" in summary and "was a new face)" in summary
    assert "Face 1 → biden-three instead of a new face" in note and "pick another face" in note


def test_the_faces_summary_never_shows_a_strength_that_will_not_run(
    engine: Engine, two_faces: tuple[Path, list[str]]
) -> None:
    """A strength outside what runs (the slider's number box, or raw HTTP) is refused when it is set, naming
    the field; the summary and the request keep the strength that runs (it said 1.5, and Generate refused)."""
    swap = SwapHandlers(engine)
    photo, value, *_ = swap.load_photo(str(two_faces[0]), NO_LORA, 0.5, "")
    fields = {"photo": photo, "editor": value, "face": 0, "person": NO_LORA, "prompt": "", **QUICK}
    for strength in (1.5, 0.0, -1):
        with pytest.raises(gr.Error, match="strength must be between 0.05 and 1"):
            swap.update_choice({**fields, "strength": strength})
        assert photo.choices[0].strength == 0.5
    _, summary = swap.update_choice({**fields, "strength": 0.8})
    assert "1: **a new face** (0.8)" in summary
    _, _, record, *_ = swap.generate({**fields, "strength": 0.8})
    assert record["faces"][0]["strength"] == 0.8
    with pytest.raises(gr.Error, match="strength must be between 0.05 and 1"):
        swap.load_photo(str(two_faces[0]), NO_LORA, 2.0, "")


def test_photos_of_a_person_without_the_adapter_say_what_is_missing_and_how_to_get_it(
    tiny_model_dir: Path, obama: list[str], astronaut: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, with no IP-Adapter given or cached: one message naming the adapter, the download and the flag."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network here either way
    spec = ModelSpec(str(tiny_model_dir), device="cpu", ip_adapter="faceswap-tests/no-such-ip-adapter")
    swap = SwapHandlers(Engine(spec, lora_dir=tmp_path))
    photo, value, *_ = swap.load_photo(_saved(astronaut, tmp_path), NO_LORA, 0.5, "")
    fields = {"photo": photo, "editor": value, "face": 0, "person": NO_LORA, "strength": 0.5, "prompt": "", **QUICK}
    swap.photos_changed({**fields, "references": obama})
    with pytest.raises(gr.Error) as refused:
        swap.generate({**fields, "references": obama})
    message = refused.value.message
    assert message.startswith("photos of a person need the IP-Adapter faceswap-tests/no-such-ip-adapter")
    assert "hf download faceswap-tests/no-such-ip-adapter" in message and "--ip-adapter" in message


def _saved(image: Any, folder: Path) -> str:
    path = folder / "photo.png"
    image.save(path)
    return str(path)
