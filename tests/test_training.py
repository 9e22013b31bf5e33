"""The LoRA trainer on the tiny model: loss falls, checkpoints load, resume, cancel, clear errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vqa_factory import save_tiny_blip_vqa

from faceswap_core.errors import DatasetError, SettingsError
from faceswap_core.settings import ModelSpec, TrainSettings
from faceswap_core.training import TrainProgress, TrainResult, train_lora
from faceswap_core.training.checkpoints import STATE_JSON, STATE_TENSORS, resolve_output_dir, sanitize_name

# 64 px at lr 1e-2: a few seconds per run on a 2-core CPU, and enough to move the tiny UNet.
FAST = TrainSettings(
    steps=20,
    rank=4,
    learning_rate=1e-2,
    resolution=64,
    checkpoint_every=10,
    flip=False,
    sample_steps=2,
)


@pytest.fixture(scope="module")
def face_dataset(tmp_path_factory: pytest.TempPathFactory, astronaut: Image.Image) -> Path:
    """A prepared dataset of one face crop (the over-fitting case)."""
    folder = tmp_path_factory.mktemp("dataset")
    astronaut.crop((130, 20, 330, 220)).resize((96, 96)).save(folder / "astronaut.png")
    (folder / "metadata.csv").write_text('file_name,text\nastronaut.png,"a photo of a woman face, smiling"\n')
    return folder


@pytest.fixture(scope="module")
def trained(
    tiny_model_dir: Path, face_dataset: Path, tmp_path_factory: pytest.TempPathFactory, astronaut: Image.Image
) -> TrainResult:
    updates: list[TrainProgress] = []
    lora_dir = tmp_path_factory.mktemp("lora_weights")
    target = tmp_path_factory.mktemp("target") / "astronaut.png"
    astronaut.save(target)
    settings = TrainSettings(**{**FAST.__dict__, "sample_target": str(target)})
    result = train_lora(
        face_dataset,
        "anna",
        base_model=str(tiny_model_dir),
        settings=settings,
        lora_dir=lora_dir,
        progress=updates.append,
    )
    result.updates = updates  # type: ignore[attr-defined]
    return result


def _fixed_batch_loss(pipeline, dataset: Path) -> float:
    """The epsilon MSE of the pipeline's UNet on fixed noise at 16 spread timesteps."""
    from diffusers import DDPMScheduler

    from faceswap_core.training.dataset import encode_dataset, read_metadata

    cached = encode_dataset(
        pipeline,
        read_metadata(dataset),
        resolution=FAST.resolution,
        flip=False,
        device=torch.device("cpu"),
        text_dtype=torch.float32,
        encode_captions=True,
        seed=0,
    )
    count = 16
    latents = cached.latent_mean.repeat(count, 1, 1, 1)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    timesteps = torch.linspace(0, 999, count).long()
    noisy = DDPMScheduler.from_config(pipeline.scheduler.config).add_noise(latents, noise, timesteps)
    with torch.no_grad():
        prediction = pipeline.unet(
            noisy,
            timesteps,
            encoder_hidden_states=cached.prompt_embeds.repeat(count, 1, 1),
            added_cond_kwargs={
                "text_embeds": cached.pooled_embeds.repeat(count, 1),
                "time_ids": cached.time_ids.repeat(count, 1),
            },
        ).sample
    return torch.nn.functional.mse_loss(prediction, noise).item()


def _load(model_dir: Path):
    from faceswap_core.models import load_inpaint_pipeline

    return load_inpaint_pipeline(ModelSpec(str(model_dir), device="cpu"))


def _generate(pipeline) -> np.ndarray:
    image = pipeline(
        prompt="a photo of a woman face",
        image=Image.new("RGB", (64, 64), (120, 110, 100)),
        mask_image=Image.new("L", (64, 64), 255),
        strength=1.0,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]
    return np.asarray(image)


def test_output_layout_and_training_json(trained: TrainResult, face_dataset: Path) -> None:
    out = trained.output_dir
    assert out.name == "anna" and trained.steps_done == 20 and not trained.cancelled
    assert trained.final_weights == out / "pytorch_lora_weights.safetensors" and trained.final_weights.is_file()
    assert [p.name for p in trained.checkpoints] == ["checkpoint-10", "checkpoint-20"]
    assert all((p / "pytorch_lora_weights.safetensors").is_file() for p in trained.checkpoints)
    assert [p.name for p in trained.samples] == ["step-0010.png", "step-0020.png"]
    assert Image.open(trained.samples[-1]).size == (64, 64)
    assert Image.open(out / "samples" / "step-0020-target.png").size == (64, 64)  # the inpainted target face
    # Only the newest checkpoint keeps optimizer state, and nothing anywhere is a pickle.
    assert (out / "checkpoint-20" / STATE_TENSORS).is_file() and not (out / "checkpoint-10" / STATE_TENSORS).exists()
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".bin", ".ckpt", ".pkl")]
    record = json.loads((out / "training.json").read_text())
    assert (
        record["steps_done"] == 20
        and record["finished"]
        and record["final_weights"] == "pytorch_lora_weights.safetensors"
    )
    assert record["captions"] == {"astronaut.png": "a photo of a woman face, smiling"}
    # The photos are copied into the LoRA's folder (a dataset elsewhere may be temporary), named relative to it.
    assert record["reference_photos"] == ["dataset/astronaut.png"] and (out / "dataset" / "astronaut.png").is_file()
    assert record["dataset_dir"] == "dataset"
    assert record["settings"]["rank"] == 4 and record["settings"]["learning_rate"] == 1e-2
    assert [c["step"] for c in record["checkpoints"]] == [10, 20]
    assert record["checkpoints"][0]["sample"] == "samples/step-0010.png"
    assert record["checkpoints"][0]["target_sample"] == "samples/step-0010-target.png"
    assert len(record["losses"]) == 20 and record["created"]


def test_progress_reports_every_step(trained: TrainResult) -> None:
    updates = [u for u in trained.updates if u.stage == "training"]  # type: ignore[attr-defined]
    assert [u.step for u in updates] == list(range(1, 21))
    assert all(u.total == 20 and u.loss is not None and u.eta is not None and u.eta >= 0 for u in updates)
    assert updates[9].checkpoint == trained.checkpoints[0] and updates[9].latest_sample == trained.samples[0]
    assert updates[8].checkpoint is None
    assert trained.updates[-1].stage == "done"  # type: ignore[attr-defined]
    assert {"preparing", "loading", "caching"} <= {u.stage for u in trained.updates}  # type: ignore[attr-defined]


def test_loss_falls_when_overfitting_one_image(trained: TrainResult, tiny_model_dir: Path, face_dataset: Path) -> None:
    pipeline = _load(tiny_model_dir)
    before = _fixed_batch_loss(pipeline, face_dataset)
    pipeline.load_lora_weights(str(trained.final_weights))
    after = _fixed_batch_loss(pipeline, face_dataset)
    assert after < before - 0.005, (before, after)
    assert np.mean(trained.losses[-10:]) < np.mean(trained.losses[:10])


def test_checkpoint_loads_into_diffusers_and_changes_output(trained: TrainResult, tiny_model_dir: Path) -> None:
    pipeline = _load(tiny_model_dir)
    plain = _generate(pipeline)
    pipeline.load_lora_weights(str(trained.checkpoints[0]), weight_name="pytorch_lora_weights.safetensors")
    assert not np.allclose(_generate(pipeline), plain)


def test_trained_lora_is_listed_and_used_by_the_engine(trained: TrainResult, tiny_model_dir: Path) -> None:
    engine_module = pytest.importorskip("faceswap_core.engine")
    from faceswap_core.settings import SwapSettings

    engine = engine_module.Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=str(trained.output_dir.parent))
    names = engine.loras.names()
    assert names[0] == "anna" and "anna/checkpoint-10" in names
    info = engine.loras.resolve("anna")
    assert info.metadata["steps_done"] == 20 and info.metadata["reference_photos"]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))
    mask = Image.new("L", (80, 80), 0)
    mask.paste(255, (16, 16, 64, 64))
    plain = engine.swap(image, mask=mask, settings=SwapSettings(steps=4, seed=1, color_match=False))
    swapped = engine.swap(image, mask=mask, settings=SwapSettings(steps=4, seed=1, color_match=False, lora="anna"))
    assert not np.array_equal(np.asarray(plain.image), np.asarray(swapped.image))


def test_resume_continues_exactly_where_it_stopped(tiny_model_dir: Path, face_dataset: Path, tmp_path: Path) -> None:
    settings = TrainSettings(**{**FAST.__dict__, "steps": 4, "checkpoint_every": 2, "sample_every_checkpoint": False})
    straight = train_lora(
        face_dataset, "straight", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path
    )
    first = train_lora(
        face_dataset,
        "resumed",
        base_model=str(tiny_model_dir),
        settings=TrainSettings(**{**settings.__dict__, "steps": 2}),
        lora_dir=tmp_path,
    )
    assert first.steps_done == 2
    with pytest.raises(SettingsError, match="already exists"):
        train_lora(face_dataset, "resumed", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path)
    second = train_lora(
        face_dataset, "resumed", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path, resume=True
    )
    assert second.steps_done == 4 and len(second.losses) == 4
    assert second.losses[:2] == first.losses
    # Same parameters, optimizer moments and random stream: the resumed run IS the straight run.
    np.testing.assert_allclose(second.losses, straight.losses, rtol=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(straight.final_weights), load_file(second.final_weights)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    record = json.loads((second.output_dir / "training.json").read_text())
    assert record["steps_done"] == 4 and [c["step"] for c in record["checkpoints"]] == [2, 4]
    with pytest.raises(SettingsError, match="already has 4 steps"):
        train_lora(
            face_dataset, "resumed", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path, resume=True
        )


def test_cancel_keeps_a_loadable_checkpoint(tiny_model_dir: Path, face_dataset: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_three(update: TrainProgress) -> None:
        if update.stage == "training" and update.step == 3:
            cancel.set()

    settings = TrainSettings(**{**FAST.__dict__, "steps": 20, "checkpoint_every": 10, "sample_every_checkpoint": False})
    result = train_lora(
        face_dataset,
        tmp_path / "cancelled",
        base_model=str(tiny_model_dir),
        settings=settings,
        progress=stop_after_three,
        cancel=cancel,
    )
    assert result.cancelled and result.steps_done == 3 and result.final_weights is None
    assert [p.name for p in result.checkpoints] == ["checkpoint-3"]
    assert (result.checkpoints[0] / STATE_JSON).is_file()
    record = json.loads((result.output_dir / "training.json").read_text())
    assert record["cancelled"] and not record["finished"] and record["steps_done"] == 3
    pipeline = _load(tiny_model_dir)
    pipeline.load_lora_weights(str(result.checkpoints[0]), weight_name="pytorch_lora_weights.safetensors")
    assert pipeline.get_list_adapters()["unet"]


def test_nine_channel_inpainting_unet_trains(tiny_inpaint_model_dir: Path, face_dataset: Path, tmp_path: Path) -> None:
    settings = TrainSettings(**{**FAST.__dict__, "steps": 2, "checkpoint_every": 2, "flip": True})
    result = train_lora(
        face_dataset, "nine", base_model=str(tiny_inpaint_model_dir), settings=settings, lora_dir=tmp_path
    )
    assert result.steps_done == 2 and all(np.isfinite(result.losses))
    assert json.loads((result.output_dir / "training.json").read_text())["inpaint_unet"] is True
    pipeline = _load(tiny_inpaint_model_dir)
    pipeline.load_lora_weights(str(result.final_weights))
    assert pipeline.get_list_adapters()["unet"]


def test_text_encoder_lora(tiny_model_dir: Path, face_dataset: Path, tmp_path: Path) -> None:
    """Trained and loaded through transformers' peft integration; with too old a peft, a clear refusal."""
    from faceswap_core.training.trainer import check_text_encoder_lora

    settings = TrainSettings(**{**FAST.__dict__, "steps": 2, "checkpoint_every": 2, "train_text_encoder": True})
    try:
        check_text_encoder_lora()
    except SettingsError as err:
        assert "peft" in str(err)
        with pytest.raises(SettingsError, match="peft"):
            train_lora(face_dataset, "te", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path)
        assert not (tmp_path / "te").exists()
        return
    result = train_lora(face_dataset, "te", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path)
    pipeline = _load(tiny_model_dir)
    pipeline.load_lora_weights(str(result.final_weights))
    assert {"unet", "text_encoder", "text_encoder_2"} <= set(pipeline.get_list_adapters())


@pytest.mark.parametrize("name", ["", "  ", "../evil", "a/b", "a\\b", ".hidden", "..", "x..y", "sp ace", "é"])
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LoRA name"):
        sanitize_name(name)
    with pytest.raises(SettingsError):
        train_lora(tmp_path, name, base_model="unused", settings=FAST, lora_dir=tmp_path)


def test_output_may_be_a_folder(tmp_path: Path) -> None:
    assert resolve_output_dir("anna", tmp_path / "loras") == tmp_path / "loras" / "anna"
    assert resolve_output_dir(tmp_path / "elsewhere" / "anna", "ignored") == tmp_path / "elsewhere" / "anna"
    with pytest.raises(SettingsError, match="slash"):  # a string is a name, even an absolute path (the UI's names)
        resolve_output_dir(str(tmp_path / "abs"), "ignored")
    with pytest.raises(SettingsError):
        resolve_output_dir(tmp_path / ".hidden", "ignored")


def test_dataset_errors(tmp_path: Path, face_dataset: Path) -> None:
    def train(data: object, name: str = "x") -> None:
        train_lora(data, name, base_model="unused", settings=FAST, lora_dir=tmp_path / "loras")  # type: ignore[arg-type]

    with pytest.raises(DatasetError, match="no such dataset"):
        train(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no photos found"):
        train(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.csv").write_text("file_name,text\ngone.png,a photo\n")
    with pytest.raises(DatasetError, match="gone.png, which does not exist"):
        train(broken)
    (broken / "metadata.csv").write_text("file_name,text\n../escape.png,a photo\n")
    with pytest.raises(DatasetError, match="inside the dataset folder"):
        train(broken)
    (broken / "metadata.csv").write_text("name,caption\n")
    with pytest.raises(DatasetError, match="file_name and text"):
        train(broken)
    assert not (tmp_path / "loras" / "x").exists()  # a failed start leaves no half-made LoRA behind


def test_existing_name_is_never_overwritten(tmp_path: Path, face_dataset: Path) -> None:
    (tmp_path / "anna").mkdir()
    (tmp_path / "anna" / "notes.txt").write_text("mine")
    with pytest.raises(SettingsError, match="already exists"):
        train_lora(face_dataset, "anna", base_model="unused", settings=FAST, lora_dir=tmp_path)
    with pytest.raises(SettingsError, match="no checkpoint to resume"):
        train_lora(face_dataset, "anna", base_model="unused", settings=FAST, lora_dir=tmp_path, resume=True)
    assert (tmp_path / "anna" / "notes.txt").read_text() == "mine"


def test_raw_photos_are_prepared_first(tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path) -> None:
    pytest.importorskip("faceswap_core.prepare")
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.save(photos / "astro.jpg")
    vqa = save_tiny_blip_vqa(tmp_path / "blip")  # captions from a (tiny, random) VQA model
    changes = {"steps": 1, "checkpoint_every": 1, "class_word": "man", "vqa_model": str(vqa)}
    settings = TrainSettings(**{**FAST.__dict__, **changes, "sample_every_checkpoint": False})
    result = train_lora(photos, "raw", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path / "loras")
    record = json.loads((result.output_dir / "training.json").read_text())
    assert record["dataset_dir"] == "dataset" and (result.output_dir / "dataset").is_dir()
    [caption] = record["captions"].values()
    assert caption.startswith("a photo of a man face")
    assert (result.output_dir / "dataset" / "metadata.csv").read_text().count(caption.split(",")[0]) == 1
    assert all((result.output_dir / p).is_file() for p in record["reference_photos"])  # inside the LoRA


def test_cancel_before_the_first_step_frees_the_name(tiny_model_dir: Path, face_dataset: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    settings = TrainSettings(**{**FAST.__dict__, "steps": 5, "sample_every_checkpoint": False})
    result = train_lora(
        face_dataset, "early", base_model=str(tiny_model_dir), settings=settings, lora_dir=tmp_path, cancel=cancel
    )
    assert result.cancelled and result.steps_done == 0
    assert not (tmp_path / "early").exists()  # the same name can be trained again
