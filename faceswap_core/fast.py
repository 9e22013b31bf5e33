"""Fast mode: a swap in a handful of UNet evaluations with a distilled few-step LoRA.

A default swap (30 scheduled steps, strength 0.5, guidance 7) runs 15 denoising steps, each on a
batch of two (classifier-free guidance): 30 UNet evaluations. Fast mode loads a few-step LoRA next
to the person's LoRA, swaps in the scheduler it was distilled for and turns CFG off: 4 evaluations.

Facts checked in the installed diffusers (0.42) source, not taken on trust:

- ``StableDiffusionXLInpaintPipeline.get_timesteps`` keeps the last ``int(steps * strength)`` of the
  scheduler's timesteps (``denoising_start`` replaces strength when given). Euler, 4 steps at
  strength 0.5: "leading" spacing runs t=[251, 1] (wrong for a few-step model, which starts its
  schedule at 999), "trailing" runs t=[499, 249], the last half of the 4-step schedule [999, 749, 499, 249].
- ``LCMScheduler`` ignores ``timestep_spacing``: it takes N near-evenly spaced indices of its
  50-step training grid t = 20j - 1 (``original_inference_steps``), so every timestep it ever uses
  is one the consistency model was trained on; 8 steps at strength 0.5 run t=[499, 379, 259, 139].
  It refuses more than 50 scheduled steps. ``TCDScheduler`` shares this grid logic.
- ``do_classifier_free_guidance`` is ``guidance_scale > 1 and unet.config.time_cond_proj_dim is None``:
  at guidance <= 1 the UNet sees a batch of one and the negative prompt is ignored.
- ``load_lora_weights`` accepts a state dict, a folder or hub id (+ ``weight_name``) or a file; here
  the bytes are read and parsed with ``safetensors.torch.load`` after ``check_safe_weights``, so
  pickles are refused and nothing stays memory-mapped. ``unload_lora_weights()`` drops *every*
  adapter, so fast mode never calls it and never fuses: the few-step LoRA stays one named adapter,
  switched on and off with ``set_adapters`` like any other, and the engine's adapter cache stays true.
  Fusing is also not reversible bit for bit: on the tiny model ``fuse_lora`` + ``unfuse_lora`` left
  177 of 428 UNet tensors different (by up to 1.5e-8), which would break "a quality swap after a
  fast one is byte-identical". The price of staying unfused is the LoRA's own compute each step
  (bench/fast_swap.py prints it; large on the tiny model, where LoRA layers are relatively big).

Choice of the default, LCM-LoRA SDXL (``latent-consistency/lcm-lora-sdxl``), with evidence:

- Licence openrail++ on its model card, the same family as SDXL base itself. SDXL-Lightning is
  openrail++ too; Hyper-SD's card dropped its licence tag when FLUX LoRAs were added (earlier
  revisions said openrail++): unclear, so not a default; DMD2 is cc-by-nc-4.0: never a default.
- Strength < 1 (a face swap is inpainting at about 0.5): a consistency model is trained to map
  *any* point of its 50-step grid to the clean image, so a schedule that starts at t=499 is inside
  its training, and diffusers' LCM guide shows LCM-LoRA for image-to-image and inpainting. Lightning
  is trained on its N fixed timesteps only; krita-ai-diffusion's maintainer reports Lightning models
  do poorly below 100% strength and with inpainting models (Acly/krita-ai-diffusion #670, #718).
- Settings from the card: ``LCMScheduler``, 2-8 steps, guidance 0 or 1-2. Guidance 1 is used: no
  CFG, so one evaluation per step (1.5 would double them for a little prompt adherence).

How steps follow strength (the reason): with LCM every grid timestep is trained, so fast mode asks
for the smallest N with ``int(N * strength) >= k``: exactly k steps run (k = 4 by default), starting
near t = 1000 * strength like a quality swap, so strength means the same in both modes and the
cost does not shrink to 1-2 evaluations at low strength. With a Lightning-type LoRA only its own N
timesteps are trained, so N is its distilled count and ``int(N * strength)`` of them run (strength
is rounded down to a multiple of 1/N); fewer than one is a :class:`SettingsError`.

Quality cost: unmeasured here (no real weights can be downloaded in this project's test machines);
the LCM-LoRA paper and card show softer detail than 25-50 step SDXL. Use fast mode for live demos,
for trying many strengths and for previews, and the default mode for the final image.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import ModelLoadError, SettingsError, UnsafeWeightsError
from faceswap_core.loras import PICKLE_SUFFIXES, LoraRegistry, check_safe_weights
from faceswap_core.models import looks_like_path
from faceswap_core.settings import (
    FAST_GUIDANCE,
    FAST_LORA,
    FAST_LORA_FILE,
    FAST_LORA_WEIGHT,
    FAST_STEPS,
    STRENGTH,
)

if TYPE_CHECKING:
    pass

LIGHTNING_REPO = "ByteDance/SDXL-Lightning"
LIGHTNING_STEPS = (2, 4, 8)  # the LoRA files it publishes (its 1-step model is a UNet, not a LoRA)
# The modules LCM-LoRA's training script targets; the tiny few-step LoRA covers the same kinds.
FAST_LORA_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
]


@dataclass(frozen=True)
class FastMode:
    """A few-step LoRA and the sampling it was distilled for."""

    name: str
    source: str  # hub id, folder or .safetensors file
    weight_name: str | None  # file inside a hub repo or folder; None: the folder's standard or only file
    scheduler: str  # a diffusers scheduler class, built from the pipeline's own scheduler config
    scheduler_overrides: tuple[tuple[str, Any], ...]  # config values the LoRA needs (e.g. trailing spacing)
    guidance: float  # <= 1: no classifier-free guidance, one UNet evaluation per step
    distilled_steps: int  # denoising steps it is made for
    steps_follow_strength: bool  # True: any timestep of its grid is trained, so k steps run at any strength
    max_scheduled_steps: int  # the scheduler refuses more (LCM: its 50-step training grid)
    licence: str
    weight: float = FAST_LORA_WEIGHT


LCM_LORA_SDXL = FastMode(
    name="lcm-lora-sdxl",
    source=FAST_LORA,
    weight_name=FAST_LORA_FILE,
    scheduler="LCMScheduler",
    scheduler_overrides=(),
    guidance=FAST_GUIDANCE.default,
    distilled_steps=int(FAST_STEPS.default),
    steps_follow_strength=True,
    max_scheduled_steps=50,
    licence="openrail++",
)
SDXL_LIGHTNING = FastMode(
    name="sdxl-lightning-4step",
    source=LIGHTNING_REPO,
    weight_name="sdxl_lightning_4step_lora.safetensors",
    scheduler="EulerDiscreteScheduler",
    scheduler_overrides=(("timestep_spacing", "trailing"),),
    guidance=0.0,
    distilled_steps=4,
    steps_follow_strength=False,
    max_scheduled_steps=4,
    licence="openrail++",
)


def fast_mode_for(source: str | None = None, weight_name: str | None = None) -> FastMode:
    """The fast mode for a ``--fast-lora`` source: SDXL-Lightning by name, else LCM-LoRA settings.

    A name containing "lightning" gets Lightning's trailing Euler schedule and the step count in
    its name ("..._8step_..."; 4 when absent); anything else is taken to be an LCM-LoRA.
    """
    text = (source or "").strip()
    if not text:
        return LCM_LORA_SDXL
    if "lightning" not in f"{text} {weight_name or ''}".lower():
        return replace(LCM_LORA_SDXL, source=text, weight_name=weight_name or _default_file(text, FAST_LORA_FILE))
    found = re.search(r"(\d+)[-_]?steps?", f"{weight_name or ''} {Path(text).name}".lower())
    steps = int(found.group(1)) if found else SDXL_LIGHTNING.distilled_steps
    if steps not in LIGHTNING_STEPS:
        raise SettingsError(f"{text}: SDXL-Lightning LoRAs exist for {LIGHTNING_STEPS} steps, not {steps}")
    file = weight_name or _default_file(text, f"sdxl_lightning_{steps}step_lora.safetensors")
    return replace(
        SDXL_LIGHTNING,
        name=f"sdxl-lightning-{steps}step",
        source=text,
        weight_name=file,
        distilled_steps=steps,
        max_scheduled_steps=steps,
    )


def _default_file(source: str, hub_file: str) -> str | None:
    """Hub repos hold several files, so name one; a local folder or file is resolved on disk."""
    return None if Path(source).expanduser().exists() or looks_like_path(source) else hub_file


@dataclass(frozen=True)
class FastPlan:
    """What to pass to the pipeline for one fast request, and what it will run."""

    num_inference_steps: int  # scheduled steps to ask the pipeline for
    steps_run: int  # int(num_inference_steps * strength): the denoising steps that run
    guidance: float


def plan_fast_steps(
    mode: FastMode, strength: float, *, steps: int | None = None, guidance: float | None = None
) -> FastPlan:
    """Scheduled steps for ``strength`` so that the steps that run are ones the LoRA was trained on.

    ``steps`` is how many denoising steps should run (default: the distilled count); see the module
    docstring for why they follow strength only when every grid timestep is trained.
    """
    STRENGTH.check("strength", strength)
    wanted = mode.distilled_steps if steps is None else steps
    FAST_STEPS.check("fast steps", wanted)
    chosen_guidance = mode.guidance if guidance is None else guidance
    FAST_GUIDANCE.check("fast guidance", chosen_guidance)
    if mode.steps_follow_strength:
        scheduled = max(wanted, math.ceil(wanted / strength - 1e-9))
        while int(scheduled * strength) < wanted:  # the pipeline's own float expression decides
            scheduled += 1
        scheduled = min(scheduled, mode.max_scheduled_steps)
    else:
        if wanted != mode.distilled_steps:
            raise SettingsError(
                f"{mode.name} is distilled for exactly {mode.distilled_steps} steps, got {wanted}; "
                "pick the LoRA made for that step count"
            )
        scheduled = mode.distilled_steps
    run = min(int(scheduled * strength), scheduled)
    if run < 1:
        raise SettingsError(
            f"fast mode ({mode.name}) runs int({scheduled} x {strength:g}) = 0 denoising steps; "
            f"raise strength to at least {math.ceil(100 / scheduled) / 100:g}"
        )
    return FastPlan(num_inference_steps=scheduled, steps_run=run, guidance=chosen_guidance)


# --- scheduler ----------------------------------------------------------------------------------


def make_fast_scheduler(mode: FastMode, config: Mapping[str, Any]) -> Any:
    """The mode's scheduler built from the pipeline's scheduler config (betas, offsets, prediction type).

    Only keys the class accepts are passed, so diffusers does not warn about the others.
    """
    import diffusers

    scheduler_class = getattr(diffusers, mode.scheduler)
    accepted = inspect.signature(scheduler_class.__init__).parameters
    values = {key: value for key, value in dict(config).items() if key in accepted}
    return scheduler_class.from_config({**values, **dict(mode.scheduler_overrides)})


@contextmanager
def scheduler_swapped(pipeline: Any, scheduler: Any) -> Iterator[Any]:
    """Run with ``scheduler``, then put the very same original scheduler object back.

    Restoring the object (its config included: the pipeline registers it) and not rebuilding it is
    what makes a quality swap after a fast one byte-identical to one before it; schedulers reset
    their per-call state in ``set_timesteps``.
    """
    original = pipeline.scheduler
    pipeline.scheduler = scheduler
    try:
        yield scheduler
    finally:
        pipeline.scheduler = original


# --- counting UNet evaluations ------------------------------------------------------------------


@dataclass
class UnetRun:
    """What the UNet actually did during one pipeline call."""

    scheduler: str = ""
    calls: int = 0  # denoising steps run (one UNet call per step, CFG or not)
    evaluations: int = 0  # images through the UNet: a CFG batch of two counts as two
    timesteps: list[float] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The fields every swap's PNG record carries."""
        return {
            "scheduler": self.scheduler,
            "steps_run": self.calls,
            "unet_evaluations": self.evaluations,
            "timesteps": [int(t) if float(t).is_integer() else round(t, 2) for t in self.timesteps],
        }


@contextmanager
def count_unet_evaluations(pipeline: Any) -> Iterator[UnetRun]:
    """Count UNet calls, their batch sizes and timesteps with a forward pre-hook, removed afterwards.

    Works around a whole request: several pipeline calls (Try strengths, several faces) add up.
    """
    run = UnetRun()

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        run.scheduler = type(pipeline.scheduler).__name__  # the one stepping now, however the swap was nested
        run.calls += 1
        run.evaluations += int(sample.shape[0])
        run.timesteps.append(float(timestep.flatten()[0]) if hasattr(timestep, "flatten") else float(timestep))

    handle = pipeline.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield run
    finally:
        handle.remove()


def fast_record(mode: FastMode | None, plan: FastPlan | None = None) -> dict[str, Any]:
    """The mode fields of a swap's record (add :meth:`UnetRun.record` for what actually ran)."""
    if mode is None:
        return {"mode": "quality"}
    fields: dict[str, Any] = {
        "mode": "fast",
        "fast_lora": mode.name,
        "fast_lora_source": mode.source,
        "fast_lora_weight": mode.weight,
    }
    if plan is not None:
        fields.update(scheduled_steps=plan.num_inference_steps, guidance=plan.guidance)
    return fields


# --- loading the few-step LoRA ------------------------------------------------------------------


def fast_lora_file(source: str, weight_name: str | None = None) -> Path:
    """The local .safetensors file of a hub id (downloaded to the hub cache), folder or file; checked safe."""
    text = source.strip()
    if not text:
        raise ModelLoadError("no few-step LoRA given; pass a hub id, a folder or a .safetensors file")
    path = Path(text).expanduser()
    if path.is_dir() and weight_name:
        file = path / weight_name
    elif path.exists():
        file = LoraRegistry(path.parent).resolve(str(path.resolve())).path
    elif looks_like_path(text):
        raise ModelLoadError(f"few-step LoRA {text}: no such file or folder; check --fast-lora")
    else:
        file = _hub_file(text, weight_name or FAST_LORA_FILE)
    check_safe_weights(file)
    return file


def _hub_file(repo_id: str, filename: str) -> Path:
    """One file of a hub repo via the local cache; failures become one sentence saying what to do."""
    if Path(filename).suffix.lower() in PICKLE_SUFFIXES:
        check_safe_weights(filename)  # refused by suffix before anything is downloaded
    if Path(filename).suffix.lower() != ".safetensors":
        raise UnsafeWeightsError(f"{repo_id}/{filename}: only .safetensors weights are accepted")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except GatedRepoError as err:
        raise ModelLoadError(f"few-step LoRA {repo_id} is gated: accept its licence on huggingface.co") from err
    except RepositoryNotFoundError as err:
        raise ModelLoadError(f"few-step LoRA {repo_id} is not on the Hugging Face hub; check --fast-lora") from err
    except LocalEntryNotFoundError as err:
        raise ModelLoadError(
            f"few-step LoRA {repo_id}/{filename} is not in the local cache and cannot be downloaded now; "
            f"run `hf download {repo_id} {filename}` while online, or pass a local file with --fast-lora"
        ) from err
    except EntryNotFoundError as err:
        raise ModelLoadError(f"few-step LoRA {repo_id} has no file {filename}") from err
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"few-step LoRA {repo_id}/{filename} could not be downloaded: {err}") from err


# --- tiny few-step LoRA for tests ---------------------------------------------------------------


def save_tiny_fast_lora(folder: str | os.PathLike, model: str | os.PathLike | Any, *, seed: int = 1) -> Path:
    """Write ``folder/pytorch_lora_weights.safetensors``: a random LoRA shaped for a tiny model's UNet.

    ``model`` is a tiny model folder or a loaded pipeline; only the UNet's config is used (a fresh
    UNet is built from it), so the pipeline is left untouched. Both LoRA matrices are random, so the
    adapter visibly changes the output, as a real few-step LoRA does. Meant for tiny test models:
    on real SDXL this would allocate a second full UNet.
    """
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict

    if hasattr(model, "unet"):
        unet_config = model.unet.config
    else:
        unet_config = UNet2DConditionModel.load_config(Path(model) / "unet")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(unet_config)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=FAST_LORA_TARGETS))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    # PEFT key names as they are: diffusers' convert_state_dict_to_diffusers renames only the attention
    # keys, and a file mixing both namings loads partly, depending on which key its loader sees first.
    layers = get_peft_model_state_dict(unet)
    StableDiffusionXLPipeline.save_lora_weights(
        out, unet_lora_layers=layers, weight_name=FAST_LORA_FILE, safe_serialization=True
    )
    return out / FAST_LORA_FILE
