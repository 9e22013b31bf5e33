"""The Train tab's pieces that need no model: the loss chart's data, the photo notes, the captions table."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from vqa_factory import save_tiny_blip_vqa

from faceswap_core.captions import VqaCaptioner, template_caption
from faceswap_core.engine import Engine
from faceswap_core.errors import DatasetError
from faceswap_core.settings import ModelSpec
from faceswap_core.ui.train import TrainHandlers, _loss_table, _rows, smoothed


def _plot_data(losses: list[dict[str, float]]) -> dict:
    plot = gr.LinePlot(x="step", y="loss", color="series")
    return plot.postprocess(_loss_table(losses)).model_dump()


def test_loss_axes_are_numbers() -> None:
    data = _plot_data([{"step": 1, "loss": 1.146}, {"step": 2, "loss": 1.121}])
    # a nominal axis lists each value as a category, evenly spaced: a falling loss drawn as rising
    assert data["datatypes"] == {"step": "quantitative", "loss": "quantitative", "series": "nominal"}
    assert _plot_data([{"step": 1, "loss": 1.146}])["data"] == [[1, 1.146, "raw"], [1, 1.146, "smoothed"]]
    # nothing before the first step: an empty table would fix the chart's series (colours) to none
    assert _loss_table([]) is None


def test_a_smoother_line_beside_the_raw_one() -> None:
    rng = np.random.default_rng(0)
    values = list(1.0 - np.linspace(0, 0.5, 200) + rng.normal(0, 0.1, 200))
    table = _loss_table([{"step": i + 1, "loss": v} for i, v in enumerate(values)])
    raw = table[table["series"] == "raw"]["loss"].to_numpy()
    smooth = table[table["series"] == "smoothed"]["loss"].to_numpy()
    assert np.allclose(raw, values) and len(smooth) == len(raw)
    assert np.abs(np.diff(smooth)).sum() < np.abs(np.diff(raw)).sum() / 5  # far less jagged
    assert smooth[0] == raw[0] and smooth[-1] < smooth[0] - 0.3  # debiased start, and the trend survives
    assert np.allclose(smoothed([2.0, 2.0, 2.0]), 2.0)


# --- the photos: notes, the use column, automatic captions ---------------------------------------
PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=str(tmp_path_factory.mktemp("loras")))


@pytest.fixture
def uploads(astronaut: Image.Image, tmp_path: Path) -> list[str]:
    """Photos where Gradio puts uploads: a server folder named by a hash, then the person's own file name."""
    folder = tmp_path / "gradio" / "0f3a9c" / "upload"
    folder.mkdir(parents=True)
    astronaut.save(folder / "me at the beach.jpg")
    astronaut.rotate(8, resample=Image.BICUBIC).save(folder / "me.jpg")
    (folder / "notes.jpg").write_text("not a photo")
    return [str(folder / name) for name in ("me at the beach.jpg", "me.jpg", "notes.jpg")]


def test_skipped_photos_are_named_by_their_own_file_name(engine: Engine, uploads: list[str], tmp_path: Path) -> None:
    _, rows, note, _ = TrainHandlers(engine, tmp_path / "work").prepare(uploads, "woman")
    assert [row[0] for row in rows] == ["me at the beach.png", "me.png"] and all(row[2] is True for row in rows)
    assert "- notes.jpg: not an image file" in note
    assert "gradio" not in note and str(tmp_path) not in note and "0f3a9c" not in note


def test_unticked_photos_stay_out_of_training(engine: Engine, uploads: list[str], tmp_path: Path) -> None:
    _, rows, _, dataset = TrainHandlers(engine, tmp_path / "work").prepare(uploads, "woman")
    rows[0][2] = False
    TrainHandlers.write_captions(Path(dataset), _rows(rows))
    assert [row["file_name"] for row in _metadata(dataset)] == ["me.png"]
    TrainHandlers.write_captions(Path(dataset), _rows([[name, caption, "true"] for name, caption, _ in rows]))
    assert len(_metadata(dataset)) == 2  # an API caller's "true"
    TrainHandlers.write_captions(Path(dataset), _rows([row[:2] for row in rows]))
    assert len(_metadata(dataset)) == 2  # two columns: every photo is used
    with pytest.raises(DatasetError, match="every photo is unticked"):
        TrainHandlers.write_captions(Path(dataset), _rows([[name, caption, False] for name, caption, _ in rows]))


def _metadata(dataset: str) -> list[dict[str, str]]:
    with open(Path(dataset) / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_group_photo_and_somebody_else_are_told_apart(engine: Engine, tmp_path: Path) -> None:
    names = ("obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg")
    if not all((PEOPLE / name).is_file() for name in names):
        pytest.skip("shared photos of people not present")
    gallery, rows, note, _ = TrainHandlers(engine, tmp_path).prepare([str(PEOPLE / name) for name in names], "man")
    assert "- two_people.jpg: 2 faces found; crop the photo to the person or use a photo of them alone" in note
    assert re.search(r"- biden\.png: does not look like the others \(likeness [2-4]\d %, not alike\)", note)
    assert "untick **use**" in note and str(PEOPLE) not in note
    assert [caption for _, caption in gallery] == ["obama.png", "obama2.png", "⚠ biden.png: unlike the others"]
    assert [row[0] for row in rows] == ["obama.png", "obama2.png", "biden.png"]  # flagged, not dropped


def test_describe_each_photo_with_the_vqa_model(
    engine: Engine, uploads: list[str], tmp_path: Path, astronaut: Image.Image
) -> None:
    missing = TrainHandlers(engine, tmp_path / "a", vqa_model=str(tmp_path / "no-blip"))
    assert not missing.can_describe() and "not on this server" in missing.describe_note()
    with pytest.raises(gr.Error, match="not on this server"):
        missing.prepare(uploads[:1], "woman", True)
    model = save_tiny_blip_vqa(tmp_path / "blip")
    handlers = TrainHandlers(engine, tmp_path / "b", vqa_model=str(model))
    assert handlers.can_describe()
    _, rows, _, dataset = handlers.prepare(uploads[:2], "man", True)
    expected = VqaCaptioner(str(model)).caption(Path(dataset) / "me.png", "man")
    assert rows[1][1] == expected and expected.startswith("a photo of a man face, ")  # more than the template
    assert _metadata(dataset)[1]["text"] == expected
    _, rows, _, _ = handlers.prepare(uploads[:2], "man", False)
    assert rows[1][1] == template_caption("man")


# --- a person added from photos gets a LoRA: the same person, upgraded in place --------------------
def test_train_tab_upgrades_a_person_added_from_photos(tiny_model_dir: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from faceswap_core.people import People

    photos = [PEOPLE / "obama.jpg", PEOPLE / "obama2.jpg"]
    if not all(photo.is_file() for photo in photos):
        pytest.skip("shared photos of people not present")
    engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=str(tmp_path / "people"))
    people = People(engine.loras)
    before = people.add("barack", photos)[0]
    handlers = TrainHandlers(engine, tmp_path / "work")
    assert ("barack (2 photos)", "barack") in handlers.untrained_choices()
    gallery, rows, note, dataset, name, _ = handlers.load_person("barack")
    assert [label for _, label in gallery] == ["obama.png", "obama2.png"] and dataset is None and name == "barack"
    assert [row[0] for row in rows] == ["obama.png", "obama2.png"] and "barack" in note
    with pytest.raises(gr.Error, match="person added from photos"):
        handlers.load_person("../barack")
    rows[1][1] = "a photo of a man face, outdoors"  # captions edited in the table go into the person's dataset
    session = SimpleNamespace(session_hash="upgrade")
    updates = list(handlers.train(None, rows, "barack", "man", 2, 2, 1e-4, 1, 64, "", session))
    assert "ready" in updates[-1][0]
    after = people.get("barack")
    assert after.lora is not None and after.photos == before.photos and after.label == "barack (trained + 2 photos)"
    with open(before.photos[0].parent / "metadata.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle))[2] == ["obama2.png", "a photo of a man face, outdoors"]
    assert handlers.untrained_choices() == [handlers.untrained_choices()[0]]  # only "a new person" is left
    with pytest.raises(gr.Error, match="Upload photos"):  # trained now: no second upgrade from the tab
        list(handlers.train(None, rows, "barack", "man", 2, 2, 1e-4, 1, 64, "", session))


def test_a_saved_person_has_no_upload_box_and_start_over_empties_the_charts(
    engine: Engine, uploads: list[str], tmp_path: Path
) -> None:
    """Issue 21: no large empty upload box while a saved person's photos are on screen; Start over takes the
    stopped training's loss chart, samples and ranking off the screen with the training itself."""
    from faceswap_core.people import People

    person = People(engine.loras).add("stopped_one", uploads[:2])[0]
    handlers = TrainHandlers(engine, tmp_path / "work")
    *_, upload_box = handlers.load_person("stopped_one")
    assert upload_box.visible is False
    *_, upload_box = handlers.load_person("")  # a new person: photos to upload again
    assert upload_box.visible is True
    (person.photos[0].parent.parent / "checkpoint-1").mkdir()  # what a stopped training leaves
    note, *rest = handlers.start_over("stopped_one", False)
    assert "Nothing was deleted" in note and all(isinstance(update, dict) for update in rest)  # all skipped
    note, resume, start_over, loss, samples, rank_note, rank_plot = handlers.start_over("stopped_one", True)
    assert "Press **Train**" in note and not resume.visible and not start_over.visible
    assert (loss, samples, rank_note, rank_plot) == (None, [], "", None)


def test_a_name_with_spaces_is_saved_one_word_and_says_so(engine: Engine, uploads: list[str], tmp_path: Path) -> None:
    """ "Maria long" becomes "Maria_long": the status says so when training starts and when it ends."""
    from types import SimpleNamespace

    handlers = TrainHandlers(engine, tmp_path / "work")
    _, rows, _, dataset = handlers.prepare(uploads[:2], "woman")
    session = SimpleNamespace(session_hash="renamed")
    updates = list(handlers.train(dataset, rows, "Maria long", "woman", 2, 2, 1e-4, 1, 64, "", session))
    said = "The name “Maria long” is saved as **Maria_long**"
    assert said in updates[0][0] and said in updates[-1][0] and "ready" in updates[-1][0]
    assert "Maria_long" in engine.loras.names()


def test_prepared_photos_train_a_second_person_and_leave_once_unused(
    engine: Engine, uploads: list[str], tmp_path: Path
) -> None:
    """The uploads stay on screen after a training, so a second person can be trained from them; prepared
    photos unused for an hour (64 MB per 50 photos) are removed by the next prepare."""
    import os
    import time
    from types import SimpleNamespace

    handlers = TrainHandlers(engine, tmp_path / "work")
    _, rows, _, dataset = handlers.prepare(uploads, "woman")
    session = SimpleNamespace(session_hash="kept")
    for name in ("kept-photos", "kept-again"):
        updates = list(handlers.train(dataset, rows, name, "woman", 2, 2, 1e-4, 2, 64, "", session))
        assert "ready" in updates[-1][0]
        assert (engine.loras.folder / name / "dataset" / "me.png").is_file()
    hour_ago = time.time() - 3700
    os.utime(dataset, (hour_ago, hour_ago))
    handlers.prepare(uploads, "woman")
    assert not Path(dataset).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"steps": 10, "lr": 1}', "unknown field"),
        ('{"steps": "many"}', "steps must be a whole number"),
        ('{"learning_rate": NaN}', "NaN is not a number"),
        ('{"class_word": "' + "x" * 41 + '"}', "at most 40"),
        ("[1, 2]", "must be a JSON object"),
        ('{"steps": 1e999}', "steps must be a whole number"),
    ],
)
def test_train_settings_from_a_script_are_checked_by_name(text: str, message: str) -> None:
    from faceswap_core.errors import SettingsError
    from faceswap_core.ui.train import train_settings

    with pytest.raises(SettingsError, match=message):
        train_settings(text)
    settings = train_settings('{"steps": 12, "class_word": " man ", "resolution": 64}')
    assert (settings.steps, settings.class_word, settings.resolution, settings.rank) == (12, "man", 64, 16)
