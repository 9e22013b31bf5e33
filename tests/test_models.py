"""Base-model loading and the tiny test model: real diffusers loading, offline errors, pickle refusal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from single_file_factory import save_single_file_checkpoint

from faceswap_core.errors import ModelLoadError, UnsafeWeightsError
from faceswap_core.models import (
    build_sdxl_pipeline,
    load_inpaint_pipeline,
    native_resolution,
    pick_device,
    tiny_vocabulary,
)
from faceswap_core.settings import ModelSpec

REPO = Path(__file__).resolve().parents[1]


def test_tiny_model_loads_with_plain_diffusers(tiny_model_dir: Path, tiny_inpaint_model_dir: Path) -> None:
    from diffusers import StableDiffusionXLInpaintPipeline

    plain = StableDiffusionXLInpaintPipeline.from_pretrained(tiny_model_dir)
    inpaint = StableDiffusionXLInpaintPipeline.from_pretrained(tiny_inpaint_model_dir)
    assert plain.unet.config.in_channels == 4
    assert inpaint.unet.config.in_channels == 9
    assert plain.text_encoder.config.vocab_size >= len(plain.tokenizer)
    ids = plain.tokenizer("a photo of a woman face").input_ids
    assert ids[0] == plain.tokenizer.bos_token_id and ids[-1] == plain.tokenizer.eos_token_id
    assert len(ids) == 2 + 6  # the prompt words are single tokens, like the real CLIP tokenizer


def test_tiny_vocabulary_covers_every_byte() -> None:
    vocab, merges = tiny_vocabulary()
    assert len(vocab) == len(set(vocab.values())) and max(vocab.values()) == len(vocab) - 1
    assert {"<|startoftext|>", "<|endoftext|>", "a</w>", "photo</w>"} <= vocab.keys()
    assert all(" " in merge for merge in merges)


# Parameter counts of the real stabilityai/stable-diffusion-xl-base-1.0 components.
SDXL_PARAMETERS = {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}


def test_full_size_sdxl_configurations_rebuild_sdxl_base(tmp_path: Path) -> None:
    """The GPU benchmarks time this build, so it must be SDXL's size; the meta device allocates nothing."""
    pipeline = build_sdxl_pipeline(vocab_dir=tmp_path, device="meta", dtype=torch.float16)
    found = {name: sum(p.numel() for p in getattr(pipeline, name).parameters()) for name in SDXL_PARAMETERS}
    assert found == SDXL_PARAMETERS
    assert pipeline.unet.dtype == torch.float16 and pipeline.unet.device.type == "meta"
    assert native_resolution(pipeline) == 1024


def test_tiny_model_20_step_inpaint_is_fast(tiny_model_dir: Path) -> None:
    pipeline = load_inpaint_pipeline(ModelSpec(str(tiny_model_dir), device="cpu"))
    size = native_resolution(pipeline)
    assert size == 64 and pipeline.dtype == torch.float32
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (16, 16, 48, 48))
    started = time.perf_counter()
    out = pipeline(prompt="a photo", image=image, mask_image=mask, strength=1.0, num_inference_steps=20).images[0]
    assert out.size == (size, size)
    assert time.perf_counter() - started < 60  # a few seconds normally; generous for a loaded CI box


def test_load_folder_with_vae_override(tiny_model_dir: Path) -> None:
    pipeline = load_inpaint_pipeline(ModelSpec(str(tiny_model_dir), device="cpu", vae=str(tiny_model_dir / "vae")))
    assert pipeline.device.type == "cpu"
    assert pipeline.vae.config.latent_channels == 4


def test_pick_device() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(ModelLoadError, match="unknown"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device("cuda")


def test_missing_or_incomplete_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_inpaint_pipeline(ModelSpec(str(tmp_path / "missing" / "model"), device="cpu"))
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_inpaint_pipeline(ModelSpec(str(tmp_path), device="cpu"))
    with pytest.raises(ModelLoadError, match="no such checkpoint"):
        load_inpaint_pipeline(ModelSpec(str(tmp_path / "absent.safetensors"), device="cpu"))


def test_pickle_checkpoints_are_refused_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        load_inpaint_pipeline(ModelSpec(str(ckpt), device="cpu"))
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(b"\x80\x02}q\x00." * 4)
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        load_inpaint_pipeline(ModelSpec(str(renamed), device="cpu"))


def test_single_file_that_is_not_an_sdxl_checkpoint(tiny_model_dir: Path) -> None:
    """A real safetensors file that is not an SDXL checkpoint fails with one line, not a traceback."""
    weights = next((tiny_model_dir / "vae").glob("*.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_inpaint_pipeline(ModelSpec(str(weights), device="cpu"))
    assert "\n" not in str(info.value) and str(weights) in str(info.value)


def test_offline_hub_id_says_what_to_do(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    code = (
        "from faceswap_core.models import load_inpaint_pipeline; from faceswap_core.settings import ModelSpec; "
        "load_inpaint_pipeline(ModelSpec('nobody/no-such-model'))"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "ModelLoadError" in last
    assert "hf download nobody/no-such-model" in last


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError("403 Client Error: this repo is gated"), "accept its licence"),
        (OSError("401 Client Error: Unauthorized, invalid token"), "hf auth login"),
        (OSError("Repository Not Found for url"), "not found on the Hugging Face hub"),
        (OSError("ConnectError: Name or service not known"), "hf download owner/model"),
    ],
)
def test_hub_failures_become_one_sentence_with_a_fix(
    error: Exception, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import StableDiffusionXLInpaintPipeline

    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(StableDiffusionXLInpaintPipeline, "from_pretrained", failing)
    with pytest.raises(ModelLoadError) as info:
        load_inpaint_pipeline(ModelSpec("owner/model", device="cpu"))
    assert expected in str(info.value) and "\n" not in str(info.value)


# --- single-file checkpoints (original LDM key layout), loaded offline with a local config folder ---------------


@pytest.fixture(scope="module")
def single_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny 4-channel model as one original-format checkpoint, as model sites ship SDXL."""
    return save_single_file_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("single") / "tiny-sdxl.safetensors")


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """An empty hub cache with downloads off: whatever loads here loads without the network."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def _assert_same_picture(first: np.ndarray, second: np.ndarray) -> None:
    """Equal weights, but float sums may round differently (memory alignment picks the BLAS kernel): 1-2 levels."""
    assert first.shape == second.shape
    assert np.abs(first.astype(int) - second.astype(int)).max() <= 2


def _inpaint(pipeline: object) -> np.ndarray:
    size = native_resolution(pipeline)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (16, 16, 48, 48))
    generator = torch.Generator("cpu").manual_seed(0)
    out = pipeline(prompt="a photo", image=image, mask_image=mask, num_inference_steps=3, generator=generator)
    return np.asarray(out.images[0])


@pytest.mark.parametrize("model", ["tiny_model_dir", "tiny_inpaint_model_dir"])
def test_single_file_with_config_loads_the_same_weights(
    model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLInpaintPipeline
    from safetensors import safe_open

    model_dir: Path = request.getfixturevalue(model)
    checkpoint = save_single_file_checkpoint(model_dir, tmp_path / "model.safetensors")
    reference = StableDiffusionXLInpaintPipeline.from_pretrained(model_dir)
    with safe_open(checkpoint, "pt") as weights:  # the layout of downloaded SDXL files, not diffusers'
        keys = set(weights.keys())
        conv_in = weights.get_tensor("model.diffusion_model.input_blocks.0.0.weight")
    assert conv_in.shape[1] == reference.unet.config.in_channels
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in keys
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in keys
    assert not any(key.startswith(("unet.", "vae.", "text_encoder")) for key in keys)

    pipeline = load_inpaint_pipeline(ModelSpec(str(checkpoint), base_config=str(model_dir), device="cpu"))
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        expected, loaded = getattr(reference, name).state_dict(), getattr(pipeline, name).state_dict()
        assert loaded.keys() == expected.keys(), name
        assert all(torch.allclose(loaded[key], expected[key]) for key in expected), name
    reference.set_progress_bar_config(disable=True)
    _assert_same_picture(_inpaint(pipeline), _inpaint(reference))


def test_engine_single_file_swaps_like_the_folder(single_file: Path, tiny_model_dir: Path) -> None:
    from faceswap_core.engine import Engine
    from faceswap_core.settings import SwapSettings

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (30, 20, 70, 60))
    settings = SwapSettings(steps=4, seed=5)
    from_file = Engine(ModelSpec(str(single_file), device="cpu", base_config=str(tiny_model_dir)))
    from_folder = Engine(ModelSpec(str(tiny_model_dir), device="cpu"))
    first = from_file.swap(image, mask=mask, settings=settings)
    second = from_folder.swap(image, mask=mask, settings=settings)
    _assert_same_picture(np.asarray(first.image), np.asarray(second.image))
    assert first.record["faces"][0]["seed"] == second.record["faces"][0]["seed"] == 5
    assert first.record["base_model"] == str(single_file)


def test_config_must_be_a_diffusers_folder_for_a_single_file(
    single_file: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="--base-config must be a diffusers SDXL folder"):
        load_inpaint_pipeline(ModelSpec(str(single_file), base_config=str(tmp_path), device="cpu"))
    with pytest.raises(ModelLoadError, match="only applies to a single .safetensors"):
        load_inpaint_pipeline(ModelSpec(str(tiny_model_dir), base_config=str(tiny_model_dir), device="cpu"))


def test_cli_swap_single_file_offline_needs_config(single_file: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Offline, a single file loads with a --base-config folder of configs only; without it the error says so."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (72, 88, 3), dtype=np.uint8)).save(photo)
    mask = tmp_path / "mask.png"
    box = Image.new("L", (88, 72), 0)
    box.paste(255, (20, 16, 60, 56))
    box.save(mask)
    out = tmp_path / "out.png"
    command = [sys.executable, "-m", "faceswap_core", "swap", str(photo), "-o", str(out), "--mask", str(mask)]
    command += ["--base", str(single_file), "--device", "cpu", "--steps", "3", "--seed", "1"]
    env = _offline_env(tmp_path)

    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "--base-config" in run.stderr and not out.exists()

    configs = tmp_path / "configs"  # what `hf download REPO --exclude '*.safetensors'` leaves: no weights
    shutil.copytree(tiny_model_dir, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    run = subprocess.run(
        [*command, "--base-config", str(configs)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    with Image.open(out) as result:
        assert result.size == (88, 72)


def test_training_loads_a_single_file_base_with_its_config(
    single_file: Path, tiny_model_dir: Path, tmp_path: Path, astronaut: Image.Image
) -> None:
    from faceswap_core.settings import TrainSettings
    from faceswap_core.training import train_lora

    data = tmp_path / "dataset"
    data.mkdir()
    astronaut.crop((130, 20, 330, 220)).resize((64, 64)).save(data / "face.png")
    (data / "metadata.csv").write_text('file_name,text\nface.png,"a photo of a woman face"\n')
    settings = TrainSettings(steps=2, rank=4, resolution=64, checkpoint_every=2, sample_every_checkpoint=False)
    result = train_lora(
        data,
        "from-single-file",
        base_model=str(single_file),
        base_config=str(tiny_model_dir),
        settings=settings,
        lora_dir=tmp_path / "loras",
        device="cpu",
    )
    assert result.steps_done == 2 and result.final_weights is not None and result.final_weights.is_file()
