"""Base-model loading and the tiny test model: real diffusers loading, offline errors, pickle refusal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceswap_core.errors import ModelLoadError, UnsafeWeightsError
from faceswap_core.models import load_inpaint_pipeline, native_resolution, pick_device, tiny_vocabulary

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


def test_tiny_model_20_step_inpaint_is_fast(tiny_model_dir: Path) -> None:
    pipeline = load_inpaint_pipeline(str(tiny_model_dir), device="cpu")
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
    pipeline = load_inpaint_pipeline(str(tiny_model_dir), device="cpu", vae=str(tiny_model_dir / "vae"))
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
        load_inpaint_pipeline(str(tmp_path / "missing" / "model"), device="cpu")
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_inpaint_pipeline(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="no such checkpoint"):
        load_inpaint_pipeline(str(tmp_path / "absent.safetensors"), device="cpu")


def test_pickle_checkpoints_are_refused_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        load_inpaint_pipeline(str(ckpt), device="cpu")
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(b"\x80\x02}q\x00." * 4)
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        load_inpaint_pipeline(str(renamed), device="cpu")


def test_single_file_that_is_not_an_sdxl_checkpoint(tiny_model_dir: Path) -> None:
    """A real safetensors file that is not an SDXL checkpoint fails with one line, not a traceback."""
    weights = next((tiny_model_dir / "vae").glob("*.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_inpaint_pipeline(str(weights), device="cpu")
    assert "\n" not in str(info.value) and str(weights) in str(info.value)


def test_offline_hub_id_says_what_to_do(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    code = "from faceswap_core.models import load_inpaint_pipeline; load_inpaint_pipeline('nobody/no-such-model')"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "ModelLoadError" in last
    assert "hf download nobody/no-such-model" in last


def test_single_safetensors_file_goes_to_from_single_file(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing only: a real SDXL checkpoint cannot be made offline (diffusers fetches SDXL's configs for it)."""
    from diffusers import StableDiffusionXLInpaintPipeline
    from safetensors.torch import save_file

    checkpoint = tmp_path / "my-sdxl-model.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, checkpoint)
    calls = []

    def fake_from_single_file(path: str, **kwargs: object) -> StableDiffusionXLInpaintPipeline:
        calls.append((path, kwargs))
        return StableDiffusionXLInpaintPipeline.from_pretrained(tiny_model_dir)

    monkeypatch.setattr(StableDiffusionXLInpaintPipeline, "from_single_file", fake_from_single_file)
    pipeline = load_inpaint_pipeline(str(checkpoint), device="cpu")
    assert calls == [(str(checkpoint), {"dtype": torch.float32})]
    assert native_resolution(pipeline) == 64


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
        load_inpaint_pipeline("owner/model", device="cpu")
    assert expected in str(info.value) and "\n" not in str(info.value)
