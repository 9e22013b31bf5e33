"""Fast mode through the engine: a few-step LoRA and its scheduler, per request, stacked with a person."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine, FaceTarget
from faceswap_core.errors import SettingsError
from faceswap_core.fast import save_tiny_fast_lora
from faceswap_core.settings import ModelSpec, SwapSettings

QUALITY = SwapSettings(steps=30, strength=0.5, guidance=7.0, seed=9, color_match=False)
FAST = replace(QUALITY, fast=True)


@pytest.fixture(scope="module")
def folders(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fast")
    make_test_lora(tiny_model_dir, root / "loras" / "alice", seed=1)
    save_tiny_fast_lora(root / "lcm", tiny_model_dir, seed=2)
    save_tiny_fast_lora(root / "tiny-sdxl-lightning-4step", tiny_model_dir, seed=3)
    return {"loras": root / "loras", "lcm": root / "lcm", "lightning": root / "tiny-sdxl-lightning-4step"}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, folders: dict[str, Path]) -> Engine:
    spec = ModelSpec(str(tiny_model_dir), device="cpu", fast_lora=str(folders["lcm"]))
    return Engine(spec, lora_dir=folders["loras"])


def _image() -> tuple[Image.Image, Image.Image]:
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    mask = Image.new("L", (96, 96), 0)
    mask.paste(255, (20, 20, 76, 76))
    return image, mask


def test_fast_swap_runs_a_seventh_of_the_unet_evaluations(engine: Engine) -> None:
    image, mask = _image()
    quality = engine.swap(image, mask=mask, settings=QUALITY).record["faces"][0]
    fast = engine.swap(image, mask=mask, settings=FAST).record["faces"][0]
    assert (quality["mode"], quality["scheduler"], quality["steps_run"], quality["unet_evaluations"]) == (
        "quality",
        "EulerDiscreteScheduler",
        15,
        30,
    )
    assert (fast["mode"], fast["scheduler"], fast["steps_run"], fast["unet_evaluations"]) == (
        "fast",
        "LCMScheduler",
        4,
        4,
    )
    assert fast["unet_evaluations"] * 7 <= quality["unet_evaluations"] and fast["guidance"] == 1.0
    assert fast["adapters"][0]["lora"].startswith("fast: ")


def test_a_quality_swap_after_a_fast_one_is_byte_identical(engine: Engine) -> None:
    image, mask = _image()
    before = engine.swap(image, mask=mask, settings=replace(QUALITY, steps=8))
    engine.swap(image, mask=mask, settings=replace(FAST, lora="alice"))
    after = engine.swap(image, mask=mask, settings=replace(QUALITY, steps=8))
    assert np.array_equal(np.asarray(before.image), np.asarray(after.image))


def test_fast_stacks_with_a_person_and_does_not_leak(engine: Engine, tiny_model_dir: Path, folders: dict) -> None:
    image, mask = _image()
    both = engine.swap(image, mask=mask, settings=replace(FAST, lora="alice", lora_scale=0.8))
    fast_only = engine.swap(image, mask=mask, settings=FAST)
    assert not np.array_equal(np.asarray(both.image), np.asarray(fast_only.image))
    assert [a["weight"] for a in both.record["faces"][0]["adapters"]] == [1.0, 0.8]
    person = engine.swap(image, mask=mask, settings=replace(QUALITY, steps=8, lora="alice"))
    fresh = Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=folders["loras"])
    alone = fresh.swap(image, mask=mask, settings=replace(QUALITY, steps=8, lora="alice"))
    assert np.array_equal(np.asarray(person.image), np.asarray(alone.image))


def test_fast_works_for_several_faces_and_for_try_strengths(engine: Engine, astronaut: Image.Image) -> None:
    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut, (512, 0))
    result = engine.swap(pair, [FaceTarget(FAST, 0), FaceTarget(replace(FAST, lora="alice"), 1)])
    assert [f["unet_evaluations"] for f in result.record["faces"]] == [4, 4]
    candidates = engine.search(astronaut, settings=FAST, strengths=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert len(candidates) == 6 and all(c.record["faces"][0]["mode"] == "fast" for c in candidates)


def test_a_too_small_strength_for_a_lightning_lora_is_a_clear_error(
    tiny_model_dir: Path, folders: dict[str, Path]
) -> None:
    spec = ModelSpec(str(tiny_model_dir), device="cpu", fast_lora=str(folders["lightning"]))
    engine = Engine(spec, lora_dir=folders["loras"])
    image, mask = _image()
    with pytest.raises(SettingsError, match="raise strength to at least 0.25"):
        engine.swap(image, mask=mask, settings=replace(FAST, strength=0.2))
    ran = engine.swap(image, mask=mask, settings=FAST).record["faces"][0]
    assert (ran["scheduler"], ran["steps_run"], ran["timesteps"]) == ("EulerDiscreteScheduler", 2, [499, 249])
