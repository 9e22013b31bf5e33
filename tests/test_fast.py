"""Fast mode on the tiny model: step planning, what runs, exact restore, adapter stacking, safe loading."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.errors import ModelLoadError, SettingsError, UnsafeWeightsError
from faceswap_core.fast import (
    LCM_LORA_SDXL,
    SDXL_LIGHTNING,
    count_unet_evaluations,
    fast_lora_file,
    fast_mode_for,
    fast_record,
    make_fast_scheduler,
    plan_fast_steps,
    save_tiny_fast_lora,
    scheduler_swapped,
)
from faceswap_core.loras import LoraInfo, load_lora_into, read_lora
from faceswap_core.models import load_inpaint_pipeline
from faceswap_core.settings import FAST_LORA_FILE, ModelSpec, SwapSettings

QUALITY = SwapSettings()  # 30 steps, strength 0.5, guidance 7: the default swap
FAST_ADAPTER = "fast"


def uses_cfg(unet: Any, guidance: float) -> bool:
    """Whether the pipeline runs classifier-free guidance (the UNet on a batch of two)."""
    return guidance > 1 and getattr(unet.config, "time_cond_proj_dim", None) is None


def read_fast_lora(source: str) -> dict[str, torch.Tensor]:
    """The few-step LoRA's tensors as the engine reads them: the checked file, from memory."""
    return read_lora(fast_lora_file(source))[0]


def load_fast_lora(pipeline: Any, mode: Any) -> str:
    """Load the few-step LoRA the way the engine does (one named adapter, from memory); returns its name."""
    load_lora_into(pipeline, fast_lora_file(mode.source, mode.weight_name), FAST_ADAPTER)
    return FAST_ADAPTER


@pytest.fixture(scope="module")
def fast_lora(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_fast_lora(tmp_path_factory.mktemp("fast-lora"), tiny_model_dir)


@pytest.fixture()
def pipeline(tiny_model_dir: Path) -> Any:
    return load_inpaint_pipeline(ModelSpec(str(tiny_model_dir), device="cpu"))


@pytest.fixture(scope="module")
def crop() -> tuple[Image.Image, Image.Image]:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return Image.fromarray(pixels), mask


def _run(pipeline: Any, crop: tuple[Image.Image, Image.Image], *, steps: int, guidance: float) -> np.ndarray:
    image, mask = crop
    with torch.inference_mode():
        output = pipeline(
            prompt=QUALITY.prompt,
            negative_prompt=QUALITY.negative_prompt,
            image=image,
            mask_image=mask,
            height=64,
            width=64,
            strength=QUALITY.strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator("cpu").manual_seed(3),
        )
    return np.asarray(output.images[0])


def _quality(pipeline: Any, crop: tuple[Image.Image, Image.Image]) -> np.ndarray:
    return _run(pipeline, crop, steps=QUALITY.steps, guidance=QUALITY.guidance)


def _fast(pipeline: Any, crop: tuple[Image.Image, Image.Image], mode: Any = LCM_LORA_SDXL) -> tuple[np.ndarray, Any]:
    plan = plan_fast_steps(mode, QUALITY.strength)
    with (
        scheduler_swapped(pipeline, make_fast_scheduler(mode, pipeline.scheduler.config)),
        count_unet_evaluations(pipeline) as run,
    ):
        image = _run(pipeline, crop, steps=plan.num_inference_steps, guidance=plan.guidance)
    return image, run


@pytest.mark.parametrize("strength", [0.05, 0.1, 0.3, 0.35, 0.45, 0.5, 0.6, 0.7, 0.9, 1.0])
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_lcm_plan_runs_exactly_the_wanted_steps_with_the_fewest_scheduled(strength: float, steps: int) -> None:
    plan = plan_fast_steps(LCM_LORA_SDXL, strength, steps=steps)
    if plan.num_inference_steps == LCM_LORA_SDXL.max_scheduled_steps:  # LCM's grid has 50 timesteps, no more
        assert plan.steps_run == int(50 * strength) <= steps
    else:
        assert plan.steps_run == int(plan.num_inference_steps * strength) == steps
        assert int((plan.num_inference_steps - 1) * strength) < steps
    assert plan.guidance == 1.0


def test_lightning_plan_runs_the_tail_of_its_own_schedule_and_refuses_too_little() -> None:
    assert plan_fast_steps(SDXL_LIGHTNING, 0.5) == plan_fast_steps(SDXL_LIGHTNING, 0.5, steps=4)
    plan = plan_fast_steps(SDXL_LIGHTNING, 0.5)
    assert (plan.num_inference_steps, plan.steps_run, plan.guidance) == (4, 2, 0.0)
    with pytest.raises(SettingsError, match=r"int\(4 x 0.2\) = 0 .* at least 0.25"):
        plan_fast_steps(SDXL_LIGHTNING, 0.2)
    with pytest.raises(SettingsError, match="exactly 4 steps"):
        plan_fast_steps(SDXL_LIGHTNING, 0.5, steps=8)
    with pytest.raises(SettingsError, match="fast steps"):
        plan_fast_steps(LCM_LORA_SDXL, 0.5, steps=0)
    with pytest.raises(SettingsError, match="fast guidance"):
        plan_fast_steps(LCM_LORA_SDXL, 0.5, guidance=float("nan"))


def test_fast_mode_follows_the_source_name(tmp_path: Path) -> None:
    assert fast_mode_for(None) == LCM_LORA_SDXL
    local = fast_mode_for(str(tmp_path))
    assert local.scheduler == "LCMScheduler" and local.source == str(tmp_path) and local.weight_name is None
    assert fast_mode_for("someone/lcm-copy").weight_name == FAST_LORA_FILE
    eight = fast_mode_for("ByteDance/SDXL-Lightning", "sdxl_lightning_8step_lora.safetensors")
    assert (eight.distilled_steps, eight.scheduler, dict(eight.scheduler_overrides)) == (
        8,
        "EulerDiscreteScheduler",
        {"timestep_spacing": "trailing"},
    )
    assert fast_mode_for("ByteDance/SDXL-Lightning").weight_name == "sdxl_lightning_4step_lora.safetensors"
    assert fast_mode_for("./loras/sdxl_lightning_2step_lora.safetensors").distilled_steps == 2
    with pytest.raises(SettingsError, match="not 3"):
        fast_mode_for("./my_lightning_3step.safetensors")


def test_default_swap_makes_30_evaluations_and_fast_makes_4_on_lcm_timesteps(pipeline: Any, crop: Any) -> None:
    with count_unet_evaluations(pipeline) as quality:
        _quality(pipeline, crop)
    assert quality.record()["scheduler"] == "EulerDiscreteScheduler"
    assert (quality.calls, quality.evaluations) == (15, 30)
    assert uses_cfg(pipeline.unet, QUALITY.guidance) and not uses_cfg(pipeline.unet, 1.0)

    _, fast = _fast(pipeline, crop)
    record = {**fast_record(LCM_LORA_SDXL, plan_fast_steps(LCM_LORA_SDXL, 0.5)), **fast.record()}
    assert record["mode"] == "fast" and record["scheduler"] == "LCMScheduler" and record["scheduled_steps"] == 8
    assert record["steps_run"] == 4 and record["unet_evaluations"] == 4  # guidance 1: a batch of one
    assert record["timesteps"] == [499, 379, 259, 139]  # every one on LCM's grid t = 20j - 1
    assert fast.evaluations * 7 <= quality.evaluations  # the goal: at most 1/7 of the evaluations
    assert type(pipeline.scheduler).__name__ == "EulerDiscreteScheduler"  # put back
    assert fast_record(None) == {"mode": "quality"}


def test_lightning_scheduler_runs_trailing_timesteps(pipeline: Any, crop: Any) -> None:
    _, run = _fast(pipeline, crop, SDXL_LIGHTNING)
    assert run.record()["timesteps"] == [499, 249] and run.evaluations == 2  # not leading's [251, 1]


def test_quality_after_fast_is_byte_identical_to_quality_before(pipeline: Any, crop: Any) -> None:
    before_config = dict(pipeline.scheduler.config)
    before = _quality(pipeline, crop)
    fast, _ = _fast(pipeline, crop)
    after = _quality(pipeline, crop)
    assert np.array_equal(before, after)
    assert not np.array_equal(before, fast)
    assert dict(pipeline.scheduler.config) == before_config
    assert pipeline.config["scheduler"][1] == "EulerDiscreteScheduler"  # the pipeline's registered config too


def test_fast_scheduler_keeps_the_base_config_and_drops_what_it_does_not_take(pipeline: Any) -> None:
    base = pipeline.scheduler.config
    lcm = make_fast_scheduler(LCM_LORA_SDXL, base)
    assert (lcm.config.beta_schedule, lcm.config.beta_end, lcm.config.prediction_type) == (
        base.beta_schedule,
        base.beta_end,
        base.prediction_type,
    )
    assert "use_karras_sigmas" not in lcm.config
    euler = make_fast_scheduler(SDXL_LIGHTNING, base)
    assert euler.config.timestep_spacing == "trailing" and base.timestep_spacing == "leading"


def test_fast_and_person_adapters_stack_and_unstack_without_a_leak(
    pipeline: Any, crop: Any, tiny_model_dir: Path, fast_lora: Path, tmp_path: Path
) -> None:
    plain = _quality(pipeline, crop)
    person = make_test_lora(tiny_model_dir, tmp_path / "person", seed=5)
    pipeline.load_lora_weights(str(person.parent), weight_name=person.name, adapter_name="person")
    pipeline.set_adapters(["person"], adapter_weights=[0.8])
    person_only = _quality(pipeline, crop)

    mode = fast_mode_for(str(fast_lora))
    assert load_fast_lora(pipeline, mode) == FAST_ADAPTER
    injected = [m for m in pipeline.unet.modules() if FAST_ADAPTER in getattr(m, "lora_A", {})]
    assert len(injected) == sum(".lora_A." in key for key in read_fast_lora(str(fast_lora))) > 0  # all, not part
    pipeline.set_adapters([FAST_ADAPTER, "person"], adapter_weights=[mode.weight, 0.8])
    both, run = _fast(pipeline, crop, mode)
    assert run.evaluations == 4
    pipeline.set_adapters([FAST_ADAPTER], adapter_weights=[mode.weight])
    fast_only, _ = _fast(pipeline, crop, mode)
    assert not np.array_equal(both, fast_only)  # the person's LoRA acts in fast mode too

    pipeline.set_adapters(["person"], adapter_weights=[0.8])
    assert np.array_equal(_quality(pipeline, crop), person_only)
    pipeline.disable_lora()
    assert np.array_equal(_quality(pipeline, crop), plain)
    assert not np.array_equal(person_only, plain)


def test_a_fast_lora_that_does_not_fit_leaves_no_adapter(pipeline: Any, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"unet.down_blocks.0.nope.lora_A.weight": torch.zeros(4, 7)}, str(bad))
    engine = Engine.from_pipeline(pipeline)
    before = {name for names in pipeline.get_list_adapters().values() for name in names}
    with pytest.raises(ModelLoadError, match="does not fit the base model"):
        engine._load_adapter(pipeline, LoraInfo("fast", bad))
    assert {name for names in pipeline.get_list_adapters().values() for name in names} == before


def test_fast_lora_sources_folder_file_and_refusals(fast_lora: Path, tmp_path: Path) -> None:
    assert fast_lora_file(str(fast_lora.parent)) == fast_lora
    assert fast_lora_file(str(fast_lora)) == fast_lora
    renamed = tmp_path / "mine" / "lcm.safetensors"
    renamed.parent.mkdir()
    shutil.copy(fast_lora, renamed)
    assert fast_lora_file(str(renamed.parent)) == renamed  # a folder's only .safetensors file
    tensors = read_fast_lora(str(renamed))
    assert tensors and all(isinstance(t, torch.Tensor) for t in tensors.values())

    pickle = tmp_path / "lcm.bin"
    torch.save({"weight": torch.zeros(2)}, pickle)
    with pytest.raises(UnsafeWeightsError, match="pickles"):
        fast_lora_file(str(pickle))
    disguised = tmp_path / "disguised.safetensors"
    shutil.copy(pickle, disguised)
    with pytest.raises(UnsafeWeightsError, match="content is a pickle"):
        read_fast_lora(str(disguised))
    with pytest.raises(UnsafeWeightsError, match="pickles"):
        fast_lora_file("latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.bin")
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        fast_lora_file(str(tmp_path / "missing"))


def test_an_uncached_hub_lora_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        ModelLoadError, match="not in the local cache .* `hf download latent-consistency/lcm-lora-sdxl p"
    ):
        fast_lora_file("latent-consistency/lcm-lora-sdxl")


def test_tiny_fast_lora_from_a_pipeline_matches_the_one_from_its_folder(
    pipeline: Any, fast_lora: Path, tmp_path: Path
) -> None:
    from_pipeline = save_tiny_fast_lora(tmp_path, pipeline)
    assert from_pipeline.name == FAST_LORA_FILE
    assert read_fast_lora(str(from_pipeline)).keys() == read_fast_lora(str(fast_lora)).keys()
    assert any(".conv1." in key for key in read_fast_lora(str(fast_lora)))  # convolutions too, as LCM-LoRA has
