"""Checkpoints ranked by likeness: a trained tiny person, real photos as injected samples, the recommendation rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.settings import ModelSpec, TrainSettings
from faceswap_core.training import train_lora
from faceswap_core.training.ranking import (
    COPY_PENALTY,
    SCORES_FILE,
    CheckpointScore,
    rank_checkpoints,
    read_scores,
    recommend,
    recommended_checkpoint,
    reference_geometry,
    score_sample,
)

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine whose LoRA folder holds 'anna', trained for 30 steps with checkpoints at 10, 20 and 30."""
    dataset = tmp_path_factory.mktemp("dataset")
    rows = ["file_name,text"]
    for number, box in enumerate([(110, 0, 350, 240), (140, 20, 330, 210), (120, 10, 340, 230)]):
        astronaut.crop(box).resize((160, 160)).save(dataset / f"a{number}.png")
        rows.append(f'a{number}.png,"a photo of a woman face"')
    (dataset / "metadata.csv").write_text("\n".join(rows) + "\n")
    lora_dir = tmp_path_factory.mktemp("loras")
    settings = TrainSettings(
        steps=30, rank=4, learning_rate=1e-2, resolution=64, checkpoint_every=10, sample_every_checkpoint=False
    )
    train_lora(dataset, "anna", base_model=str(tiny_model_dir), settings=settings, lora_dir=lora_dir)
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=lora_dir)


def drawing(samples: dict[str, Image.Image]) -> Callable[..., list[Image.Image]]:
    """A render that 'draws' each checkpoint's given image for every prompt (as a sweep orders them)."""
    return lambda loras, prompts, *_: [samples[lora] for lora in loras for _ in prompts]


def test_samples_without_faces_recommend_nothing_and_say_so(engine: Engine) -> None:
    ranking = rank_checkpoints(engine, "anna", steps=2)
    assert [entry.step for entry in ranking.checkpoints] == [10, 20, 30]
    assert all(entry.score is None and entry.faces == 0 for entry in ranking.checkpoints)
    assert ranking.recommended is None and "no face was found" in ranking.note
    # one sample of the first and of the last checkpoint shows no face: the model draws none, nothing more is drawn
    assert [len(entry.samples) for entry in ranking.checkpoints] == [1, 0, 1] and "others were not" in ranking.note
    folder = engine.loras.resolve("anna").path.parent
    saved = json.loads((folder / SCORES_FILE).read_text())
    assert saved["recommended"] is None and saved["note"] == ranking.note and len(saved["prompts"]) == 4
    assert recommended_checkpoint(folder) is None
    assert all((folder / sample).is_file() for entry in ranking.checkpoints for sample in entry.samples)


def test_the_samples_are_sweeps_over_checkpoints_and_prompts(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking renders through the sweep Try strengths uses: the probe (first and last checkpoint, first prompt),
    then the rest; every checkpoint x prompt is drawn once, at the ranking's seed, and saved as the sweep drew it."""
    from faceswap_core import sweep as sweeps

    swept: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    drawn: list[tuple[bytes, int]] = []
    original = sweeps.sweep

    def spy(engine: Engine, request: object, **options: object) -> list:
        results = original(engine, request, **options)
        swept.append((tuple(options["loras"]), tuple(options["prompts"])))
        drawn.extend((result.image.tobytes(), result.record["faces"][0]["seed"]) for result in results)
        return results

    monkeypatch.setattr(sweeps, "sweep", spy)
    everyone = np.zeros(128)  # every sample 'shows' the same face: all are rendered
    ranking = rank_checkpoints(engine, "anna", steps=2, describe=lambda image: everyone, reuse=False)
    first, middle, last = (entry.name for entry in ranking.checkpoints)
    prompts = ranking.prompts
    assert swept == [
        ((first, last), (prompts[0],)),
        ((middle,), (prompts[0],)),
        ((first, middle, last), tuple(prompts[1:])),
    ]
    assert {seed for _, seed in drawn} == {ranking.seed}
    folder = engine.loras.resolve("anna").path.parent
    order = [(entry, 0) for entry in (0, 2, 1)] + [(entry, n) for entry in range(3) for n in range(1, len(prompts))]
    saved = [Image.open(folder / ranking.checkpoints[entry].samples[n]).tobytes() for entry, n in order]
    assert saved == [image for image, _ in drawn]


def test_checkpoints_are_ranked_by_likeness_on_real_photos(engine: Engine, astronaut: Image.Image) -> None:
    """Injected samples: checkpoint 10 'draws' someone else, checkpoint 20 the astronaut in a new framing."""
    other = PEOPLE / "obama.jpg"
    if not other.is_file():
        pytest.skip("shared photos of people not present")
    samples = {"anna/checkpoint-10": Image.open(other).convert("RGB"), "anna/checkpoint-20": astronaut}
    samples["anna/checkpoint-30"] = astronaut  # as alike as 20: the earlier one is recommended
    ranking = rank_checkpoints(engine, "anna", render=drawing(samples), reuse=False)
    first, second, third = ranking.checkpoints
    assert first.faces == second.faces == third.faces == 4 and second.score == third.score
    assert second.score is not None and first.score is not None and second.score < first.score
    assert ranking.recommended == "anna/checkpoint-20"
    folder = engine.loras.resolve("anna").path.parent
    assert recommended_checkpoint(folder) == "anna/checkpoint-20"
    assert read_scores(folder)["checkpoints"][1]["score"] == second.score
    again = rank_checkpoints(engine, "anna", render=lambda *args: pytest.fail("scores are measured again"))
    assert again == ranking  # nothing changed: the stored scores are read back


def test_the_recommended_checkpoint_is_marked_and_selected_in_the_swap_picker(
    engine: Engine, astronaut: Image.Image
) -> None:
    """Checkpoint 10 draws no face, 20 and 30 the astronaut: 20 is recommended (the handler test reads it back)."""
    from faceswap_core.ui.person_picker import person_choices, refresh_lora_picker

    blank = Image.new("RGB", (64, 64), (128, 128, 128))
    samples = {"anna/checkpoint-10": blank, "anna/checkpoint-20": astronaut, "anna/checkpoint-30": astronaut}
    ranking = rank_checkpoints(engine, "anna", render=drawing(samples), reuse=False)
    assert ranking.recommended == "anna/checkpoint-20" and ranking.checkpoints[0].score is None

    labels = dict((value, label) for label, value in person_choices(engine))
    assert labels["anna/checkpoint-20"].endswith("★ recommended")
    assert not labels["anna/checkpoint-10"].endswith("recommended") and not labels["anna"].endswith("recommended")
    picker = refresh_lora_picker(engine, "anna", "anna/checkpoint-20")
    assert picker.value == "anna/checkpoint-20"


def test_the_train_tab_ranks_on_demand_and_selects_the_recommended_checkpoint(engine: Engine) -> None:
    """The scores measured above are read back (nothing changed), drawn, and checkpoint 20 is selected."""
    import gradio as gr

    from faceswap_core.ui.train import TrainHandlers

    handlers = TrainHandlers(engine)
    note, table, picker = handlers.rank("anna", "anna", progress=lambda *args, **kwargs: None)
    assert "saved at step 20 looks most like" in note and list(table["step"]) == [20, 30]  # 10 drew no face
    assert picker.value == "anna/checkpoint-20"
    with pytest.raises(gr.Error, match="not found|no LoRA|unknown"):
        handlers.rank("nobody", "anna", progress=lambda *args, **kwargs: None)
    with pytest.raises(gr.Error, match="slash"):
        handlers.rank("../etc", "anna", progress=lambda *args, **kwargs: None)


def test_cli_ranks_on_demand_and_errors_are_one_line(
    engine: Engine, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceswap_core.cli import main

    common = ["--base", str(tiny_model_dir), "--device", "cpu", "--lora-dir", str(engine.loras.folder)]
    assert main(["person", "rank", "nobody", *common]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["person", "rank", "anna/checkpoint-10", *common]) == 2
    assert "no training checkpoints" in capsys.readouterr().err


def _entry(step: int, score: float | None) -> CheckpointScore:
    return CheckpointScore(f"p/checkpoint-{step}", step, score, score, 0.0, 0 if score is None else 4)


def test_the_earliest_checkpoint_within_the_margin_is_recommended() -> None:
    entries = [_entry(100, 0.50), _entry(200, 0.41), _entry(300, 0.40), _entry(400, 0.45), _entry(500, None)]
    assert recommend(entries, margin=0.02).step == 200
    assert recommend(entries, margin=0.0).step == 300
    assert recommend(entries, margin=0.2).step == 100
    assert recommend([_entry(100, None)]) is None


def test_a_near_copy_of_one_training_photo_pays_a_penalty() -> None:
    references = [np.array([0.0, 0.0]), np.array([0.3, 0.0]), np.array([0.15, 0.26])]  # an equilateral triangle
    centre, spread, threshold = reference_geometry(references)
    assert spread is not None and threshold is not None and threshold > 0
    stack = np.stack(references)
    copy_distance, copy_penalty = score_sample(references[0], centre, stack, threshold)
    assert copy_penalty == pytest.approx(COPY_PENALTY)
    new_distance, new_penalty = score_sample(centre, centre, stack, threshold)
    assert new_penalty == 0.0 and new_distance == 0.0 < copy_distance
