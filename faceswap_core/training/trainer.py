"""LoRA training on a person's photos: the product's replacement for the method's train.sh.

One call, :func:`train_lora`, does what the diffusers example script does, in the order that keeps a
24 GB card enough for SDXL at 1024: prepare the photos, encode latents and captions once (see
:mod:`faceswap_core.training.dataset`), move the VAE and text encoders off the GPU, then train peft
LoRA layers on the UNet's attention projections with mixed precision and, when available, 8-bit
Adam. Checkpoints are complete diffusers LoRAs plus a pickle-free optimizer state for ``resume``.
"""

from __future__ import annotations

import gc
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.dataset_file import METADATA_FILE, DatasetItem, write_metadata
from faceswap_core.errors import CancelledError, DatasetError, ModelLoadError, SettingsError
from faceswap_core.files import copy_file
from faceswap_core.settings import (
    DEFAULT_NEGATIVE_PROMPT,
    GUIDANCE,
    PADDING,
    PREPARE_SIZE,
    STRENGTH,
    TrainSettings,
    as_dict,
)
from faceswap_core.training import checkpoints as ckpt

if TYPE_CHECKING:
    import torch

    from faceswap_core.training.dataset import CachedDataset

UNET_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]
RESUME_MUST_MATCH = {"resolution": "--resolution", "rank": "--rank", "train_text_encoder": "--train-text-encoder"}
MAX_GRAD_NORM = 1.0  # diffusers' default clipping; keeps a bad batch from wrecking a tiny dataset's LoRA
WEIGHT_DECAY = 1e-2


@dataclass(frozen=True)
class TrainProgress:
    """One progress report; ``step`` counts finished optimizer steps (resumed ones included).

    ``stage`` is "preparing", "loading", "caching" (with ``step``/``total`` counting encoded images),
    "training" or "done". ``latest_sample`` and ``checkpoint`` are the newest so far, or ``None``.
    """

    step: int
    total: int
    loss: float | None
    elapsed: float  # seconds since the training loop started (0 before it)
    eta: float | None  # seconds left, estimated from this run's steps so far
    latest_sample: Path | None = None
    checkpoint: Path | None = None
    stage: str = "training"


@dataclass
class TrainResult:
    output_dir: Path
    steps_done: int
    final_weights: Path | None  # None when cancelled before the last step
    checkpoints: list[Path]  # checkpoint folders, oldest first
    cancelled: bool
    losses: list[float]  # one per step done, resumed steps included
    samples: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Precision:
    weight_dtype: torch.dtype  # frozen base weights; LoRA parameters are always float32
    autocast: torch.dtype | None
    grad_scaler: bool  # fp16 needs loss scaling; bf16 has fp32's range and does not

    @property
    def name(self) -> str:
        return str(self.autocast or self.weight_dtype).removeprefix("torch.")


def pick_precision(device: torch.device, mixed: bool) -> Precision:
    """bf16 where the GPU has it (no loss scaling needed), else fp16 with a GradScaler; fp32 off CUDA."""
    import torch

    if device.type != "cuda" or not mixed:
        return Precision(torch.float32, None, False)
    if torch.cuda.is_bf16_supported():
        return Precision(torch.bfloat16, torch.bfloat16, False)
    return Precision(torch.float16, torch.float16, True)


def make_optimizer(params: list[torch.nn.Parameter], settings: TrainSettings, device: torch.device) -> Any:
    """8-bit AdamW (a quarter of the optimizer memory) when bitsandbytes is installed on CUDA, else AdamW."""
    import torch

    if settings.use_8bit_adam and device.type == "cuda":
        try:
            import bitsandbytes as bnb
        except ImportError:
            pass
        else:
            return bnb.optim.AdamW8bit(params, lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)
    return torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)


def add_lora(model: Any, settings: TrainSettings, targets: list[str]) -> None:
    """Attach trainable LoRA layers (gaussian A, zero B: the model's output is unchanged at step 0)."""
    import torch
    from peft import LoraConfig

    alpha = settings.alpha if settings.alpha is not None else settings.rank
    config = LoraConfig(r=settings.rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets)
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's RNG
        torch.manual_seed(settings.seed)
        model.add_adapter(config)


def check_text_encoder_lora() -> None:
    """Text-encoder LoRAs are added and loaded through transformers' peft integration, which refuses
    peft versions older than it supports; say so before any work rather than after training."""
    from transformers.integrations import peft as transformers_peft

    try:
        transformers_peft.check_peft_version(min_version=transformers_peft.MIN_PEFT_VERSION)
    except ValueError:
        import peft

        raise SettingsError(
            f"training the text encoders needs peft >= {transformers_peft.MIN_PEFT_VERSION} (installed: "
            f"{peft.__version__}); upgrade peft or train the UNet only"
        ) from None


def prediction_target(scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> Any:
    """What the UNet learns to predict: the noise (epsilon) or the velocity, per the base model's config."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ModelLoadError(f"the base model predicts {kind!r}; only epsilon and v_prediction models can be trained")


class _Run:
    """The state of one training call; split from :func:`train_lora` so each phase reads on its own."""

    def __init__(
        self, out: Path, base_model: str, settings: TrainSettings, device: torch.device, base_config: str | None
    ) -> None:
        self.out = out
        self.base_model = base_model
        self.base_config = base_config
        self.settings = settings
        self.device = device
        self.precision = pick_precision(device, settings.mixed_precision)
        self.record: dict[str, Any] = {}
        self.samples: list[Path] = []
        self.latest_checkpoint: Path | None = None
        self.target: tuple[Any, Any] | None = None  # (face crop, its mask) of settings.sample_target

    # --- setup ---------------------------------------------------------------------------------
    def load(self) -> Any:
        from faceswap_core.models import load_inpaint_pipeline
        from faceswap_core.settings import ModelSpec

        model = ModelSpec(self.base_model, base_config=self.base_config, device="cpu")
        return self.adopt(load_inpaint_pipeline(model, dtype=self.precision.weight_dtype))

    def adopt(self, pipeline: Any) -> Any:
        """Check that ``pipeline`` can be trained and freeze its base weights; returns it.

        Split from :meth:`load` so a benchmark can hand in a pipeline built in memory (full-size SDXL
        with random weights, in ``precision.weight_dtype``) and still train it with this trainer's steps.
        """
        channels = pipeline.unet.config.in_channels
        if channels not in (4, 9):
            raise ModelLoadError(
                f"{self.base_model}: the UNet takes {channels} input channels; "
                "only 4 (SDXL) or 9 (inpainting) channels can be trained"
            )
        for model in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
            model.requires_grad_(False)
        return pipeline

    def sample_embeddings(self, pipeline: Any) -> tuple[torch.Tensor, ...] | None:
        """The sample prompt's embeddings, encoded now while the text encoders are loaded anyway."""
        if not self.settings.sample_every_checkpoint or self.settings.train_text_encoder:
            return None
        encoders = (pipeline.text_encoder, pipeline.text_encoder_2)
        for encoder in encoders:
            encoder.to(self.device)
        embeds = pipeline.encode_prompt(
            self.sample_prompt(),
            device=self.device,
            do_classifier_free_guidance=True,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        )
        for encoder in encoders:
            encoder.to("cpu")
        return tuple(t.cpu() for t in embeds)

    def prepare_target(self) -> None:
        """Cut the target's face crop and mask once, as the engine does, so each checkpoint can inpaint it.

        Done before any model loads, so a target without a face fails fast (:class:`NoFaceError`).
        """
        self.target = None
        if not (self.settings.sample_every_checkpoint and self.settings.sample_target):
            return
        from faceswap_core.faces.detect import find_face
        from faceswap_core.images import load_image
        from faceswap_core.regions import cut, face_region

        picture = load_image(self.settings.sample_target, name=self.settings.sample_target)
        region = face_region(picture.size, find_face(picture), face_index=0, padding=PADDING.default)
        self.target = cut(picture, region, self.settings.resolution)

    def sample_prompt(self) -> str:
        from faceswap_core.captions import template_caption

        return self.settings.sample_prompt or template_caption(self.settings.class_word)

    # --- checkpoints -----------------------------------------------------------------------------
    def make_sample(self, pipeline: Any, embeds: tuple[torch.Tensor, ...] | None, step: int) -> Path:
        """The fixed-prompt, fixed-seed sample with the LoRA as it is now; with a target, its inpainted face too.

        The latest sample path is the text-to-image one; the target's sits beside it as step-STEP-target.png.
        """
        import torch
        from PIL import Image

        from faceswap_core.images import save_png

        res = self.settings.resolution
        gray, everything = Image.new("RGB", (res, res), (127, 127, 127)), Image.new("L", (res, res), 255)
        jobs = [("", gray, everything, 1.0)]  # strength 1 on a full mask: a text-to-image sample
        if self.target is not None:
            jobs.append(("-target", *self.target, STRENGTH.default))
        if embeds is None:
            prompt_kwargs: dict[str, Any] = {"prompt": self.sample_prompt(), "negative_prompt": DEFAULT_NEGATIVE_PROMPT}
        else:
            names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
            prompt_kwargs = {name: t.to(self.device) for name, t in zip(names, embeds, strict=True)}
        unet = pipeline.unet
        unet.eval()
        vae_dtype = pipeline.vae.dtype
        pipeline.vae.to(self.device)
        if vae_dtype != torch.float32:
            pipeline.vae.to(dtype=torch.float32)  # decode in fp32: SDXL's VAE overflows in fp16
        paths = []
        try:
            for suffix, image, mask, strength in jobs:
                result = pipeline(
                    **prompt_kwargs,
                    image=image,
                    mask_image=mask,
                    strength=strength,
                    height=res,
                    width=res,
                    num_inference_steps=self.settings.sample_steps,
                    guidance_scale=GUIDANCE.default,
                    generator=torch.Generator("cpu").manual_seed(self.settings.seed),
                ).images[0]
                path = self.out / ckpt.SAMPLES_DIR / f"step-{step:04d}{suffix}.png"
                meta = {"step": str(step), "prompt": self.sample_prompt(), "seed": str(self.settings.seed)}
                paths.append(save_png(result, path, {**meta, "strength": f"{strength:g}"}))
        finally:
            pipeline.vae.to("cpu")
            if vae_dtype != torch.float32:
                pipeline.vae.to(dtype=vae_dtype)
            unet.train()
        self.samples.append(paths[0])
        return paths[0]

    def checkpoint(self, pipeline: Any, trained: dict[str, Any], state: ckpt.TrainingState, embeds: Any) -> Path:
        step = state.step
        folder = ckpt.checkpoint_dir(self.out, step)
        encoders = (pipeline.text_encoder, pipeline.text_encoder_2) if self.settings.train_text_encoder else ()
        ckpt.save_lora_weights(folder, pipeline.unet, encoders)
        ckpt.save_state(folder, trained, state)
        ckpt.drop_old_states(self.out, folder)
        sample = self.make_sample(pipeline, embeds, step) if self.settings.sample_every_checkpoint else None
        entry = {
            "step": step,
            "weights": f"{folder.name}/{ckpt.WEIGHTS_NAME}",
            "sample": sample.relative_to(self.out).as_posix() if sample else None,
            "target_sample": f"{ckpt.SAMPLES_DIR}/{sample.stem}-target.png" if sample and self.target else None,
            "loss": _recent_mean(state.losses),
        }
        entries = [e for e in self.record.get("checkpoints", []) if e["step"] != step]
        self.record["checkpoints"] = sorted([*entries, entry], key=lambda e: e["step"])
        self.latest_checkpoint = folder
        return folder

    def write_record(self, **changes: Any) -> None:
        self.record.update(changes, updated=ckpt.now_iso())
        ckpt.write_training_json(self.out, self.record)


def _recent_mean(losses: Sequence[float], window: int = 20) -> float | None:
    recent = list(losses[-window:])
    return round(sum(recent) / len(recent), 6) if recent else None


def train_lora(
    data: str | os.PathLike | Sequence[str | os.PathLike] | None,
    output: str | os.PathLike,
    *,
    base_model: str,
    settings: TrainSettings = TrainSettings(),
    lora_dir: str | os.PathLike = "lora_weights",
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    device: str | None = "auto",
    base_config: str | None = None,
) -> TrainResult:
    """Train a LoRA of the person in ``data`` and write it to ``lora_dir/output`` (or the folder ``output``).

    ``data`` is a prepared dataset folder (images + metadata.csv), a folder of raw photos, or a list
    of photos (prepared into ``OUTPUT/dataset`` first). ``output`` is a name (sanitised; an existing
    one is an error unless ``resume``, and so is the name of an existing LoRA file) or a folder given as
    a ``Path``. A person added from photos and not trained yet (see :mod:`faceswap_core.people`) is
    upgraded in place: ``data`` is then None (or its own photo folder) and it trains on its photos.
    ``cancel`` stops before the next step (or the next photo while encoding) and saves a
    checkpoint of the last finished step. ``base_config`` is the diffusers folder describing a
    single-file ``base_model``, so it loads offline.
    """
    settings.validate()
    if settings.train_text_encoder:
        check_text_encoder_lora()
    out = ckpt.resolve_output_dir(output, lora_dir)
    upgrade = not resume and untrained_person(out)
    if upgrade or (resume and data is None):
        data = _own_photos(data, out)
    elif data is None:
        ckpt.check_new_output(out)  # a trained person: resume it instead
        raise DatasetError(f"{out.name} is not a person added from photos; give the photos to train on")
    elif not resume and not isinstance(output, os.PathLike):
        from faceswap_core.loras import LoraRegistry

        LoraRegistry(lora_dir).check_new_name(out.name)  # "carol" beside carol.safetensors would hide it
    resume_from = None if upgrade else _check_output(out, resume, base_model, settings)
    created_here = not out.exists()
    try:
        result = _train(data, out, base_model, settings, resume_from, progress, cancel, device, base_config)
    except CancelledError:
        _remove_if_empty(out, created_here, upgrade)
        checkpoints = [path for _, path in ckpt.list_checkpoints(out)] if out.is_dir() else []
        start = resume_from[0] if resume_from else 0
        return TrainResult(out, start, None, checkpoints, True, [])
    except BaseException:
        _remove_if_empty(out, created_here, upgrade)
        raise
    if result.cancelled and result.steps_done == 0:
        _remove_if_empty(out, created_here, upgrade)
    return result


def untrained_person(folder: Path) -> bool:
    """A person added from photos and never trained: its folder holds its photo folder and nothing else."""
    try:
        entries = {entry.name for entry in folder.iterdir()}
    except OSError:
        return False
    return entries == {ckpt.DATASET_DIR} and (folder / ckpt.DATASET_DIR / METADATA_FILE).is_file()


def _own_photos(data: Any, out: Path) -> Path:
    """The photo folder of the person being upgraded; other photos would silently not be used, so they are refused."""
    own = out / ckpt.DATASET_DIR
    given = [] if data is None else [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if given and [Path(item).resolve() for item in given] != [own.resolve()]:
        raise SettingsError(
            f"{out.name} already has its photos; train it on them (give no photos) or choose a new name"
        )
    return own


def _remove_if_empty(out: Path, created_here: bool, upgrade: bool) -> None:
    """A run that stops before its first checkpoint leaves nothing worth keeping, and must not block the name.

    A person being upgraded keeps its photos and goes back to being a person from photos only.
    """
    if not out.is_dir() or ckpt.list_checkpoints(out) or not (created_here or upgrade):
        return
    for entry in [out] if created_here else [e for e in out.iterdir() if e.name != ckpt.DATASET_DIR]:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _check_output(out: Path, resume: bool, base_model: str, settings: TrainSettings) -> tuple[int, Path] | None:
    if not resume:
        ckpt.check_new_output(out)
        return None
    found = ckpt.latest_resumable(out)
    if found is None:
        raise SettingsError(f"{out} has no checkpoint to resume from; start it without --resume or use a new name")
    record = ckpt.read_training_json(out)
    trained_on = record.get("base_model")
    if trained_on and trained_on != base_model:
        raise SettingsError(f"{out.name} was trained on {trained_on}; resume it with --base {trained_on}")
    before = record.get("settings") or {}
    for key, flag in RESUME_MUST_MATCH.items():
        if key in before and before[key] != getattr(settings, key):
            now = getattr(settings, key)
            raise SettingsError(f"{out.name} was trained with {flag} {before[key]}; resume it with that, not {now}")
    if found[0] >= settings.steps:
        raise SettingsError(f"{out.name} already has {found[0]} steps; ask for more steps to continue training it")
    return found


def _keep_photos(dataset_dir: Path, items: list[Any], keep_dir: Path) -> tuple[Path, list[Any]]:
    """Copy a dataset prepared elsewhere (the app's temporary folder) into the LoRA's own folder.

    The LoRA then carries its training photos: ``training.json`` names files that outlive the app's
    temporary folders, and the Swap tab can rank candidates against them.
    """

    kept = [DatasetItem(keep_dir / item.image.name, item.caption) for item in items]
    if dataset_dir.resolve() != keep_dir.resolve():
        keep_dir.mkdir(parents=True, exist_ok=True)
        for item, copy in zip(items, kept, strict=True):
            copy_file(item.image, copy.image)
        write_metadata(keep_dir, [(item.image.name, item.caption) for item in kept])
    return keep_dir, kept


def _train(
    data: Any,
    out: Path,
    base_model: str,
    settings: TrainSettings,
    resume_from: tuple[int, Path] | None,
    progress: Callable[[TrainProgress], None] | None,
    cancel: threading.Event | None,
    device_name: str | None,
    base_config: str | None,
) -> TrainResult:
    import torch

    from faceswap_core.models import pick_device
    from faceswap_core.training.dataset import encode_dataset, resolve_dataset

    def report(stage: str, step: int, total: int, **values: Any) -> None:
        if stage in ("preparing", "loading", "caching") and cancel is not None and cancel.is_set():
            raise CancelledError("training was cancelled")  # before any step: nothing to keep
        if progress:
            values.setdefault("loss", None)
            values.setdefault("elapsed", 0.0)
            values.setdefault("eta", None)
            progress(TrainProgress(step=step, total=total, stage=stage, **values))

    device = pick_device(device_name)
    run = _Run(out, base_model, settings, device, base_config)
    run.prepare_target()
    start_step = resume_from[0] if resume_from else 0
    report("preparing", start_step, settings.steps)
    dataset_dir, items = resolve_dataset(
        data,
        out / ckpt.DATASET_DIR,
        size=int(min(max(settings.resolution, PREPARE_SIZE.minimum), PREPARE_SIZE.maximum)),
        class_word=settings.class_word,
        vqa_model=settings.vqa_model,
    )
    out.mkdir(parents=True, exist_ok=True)
    dataset_dir, items = _keep_photos(dataset_dir, items, out / ckpt.DATASET_DIR)
    report("loading", start_step, settings.steps)
    pipeline = run.load()
    inpaint = pipeline.unet.config.in_channels == 9
    cached = encode_dataset(
        pipeline,
        items,
        resolution=settings.resolution,
        flip=settings.flip,
        device=device,
        text_dtype=run.precision.weight_dtype,
        encode_captions=not settings.train_text_encoder,
        seed=settings.seed,
        on_item=lambda done, total: report("caching", done, total),
    )
    sample_embeds = run.sample_embeddings(pipeline)
    _free(device)

    models = {"unet": pipeline.unet}
    if settings.train_text_encoder:
        models.update(text_encoder=pipeline.text_encoder, text_encoder_2=pipeline.text_encoder_2)
    trained, optimizer, scaler = setup_lora_training(models, settings, device, run.precision)
    generator = torch.Generator().manual_seed(settings.seed)
    losses: list[float] = []
    previous = ckpt.read_training_json(out) if resume_from else {}
    if resume_from:
        state = ckpt.load_state(resume_from[1], trained)
        optimizer.load_state_dict(state.optimizer)
        generator.set_state(state.generator_state)
        if scaler is not None and state.scaler:
            scaler.load_state_dict(state.scaler)
        losses = state.losses
        run.latest_checkpoint = resume_from[1]
        run.samples = sorted(p for p in (out / ckpt.SAMPLES_DIR).glob("step-*.png") if not p.stem.endswith("-target"))
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    run.record = {
        **previous,
        "name": out.name,
        "base_model": base_model,
        "created": previous.get("created", ckpt.now_iso()),
        "dataset_dir": dataset_dir.relative_to(out).as_posix(),
        "captions": {item.image.name: item.caption for item in items},
        "reference_photos": [item.image.relative_to(out).as_posix() for item in items],
        "class_word": settings.class_word,
        "sample_prompt": run.sample_prompt(),
        "settings": as_dict(settings),
        "inpaint_unet": inpaint,
        "device": str(device),
        "precision": run.precision.name,
        "optimizer": type(optimizer).__name__,
        "steps_done": start_step,
        "finished": False,
        "cancelled": False,
        "final_weights": previous.get("final_weights"),  # a resumed LoRA keeps its old final until a new one
    }
    run.write_record()

    step = start_step
    began = time.monotonic()
    cancelled = False
    last_saved = start_step
    for step_index in range(start_step, settings.steps):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        loss = _train_step(pipeline, models, cached, noise_scheduler, optimizer, scaler, generator, run, inpaint)
        losses.append(loss)
        step = step_index + 1
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            run.checkpoint(pipeline, trained, _state(step, losses, optimizer, generator, scaler), sample_embeds)
            last_saved = step
            run.write_record(steps_done=step, losses=[round(x, 6) for x in losses])
        elapsed = time.monotonic() - began
        done_here = step - start_step
        report(
            "training",
            step,
            settings.steps,
            loss=loss,
            elapsed=elapsed,
            eta=elapsed / done_here * (settings.steps - step),
            latest_sample=run.samples[-1] if run.samples else None,
            checkpoint=run.latest_checkpoint,
        )
    if cancelled and step > last_saved:
        run.checkpoint(pipeline, trained, _state(step, losses, optimizer, generator, scaler), sample_embeds)
    final = None
    if not cancelled:
        final = out / ckpt.WEIGHTS_NAME
        copy_file(ckpt.checkpoint_dir(out, step) / ckpt.WEIGHTS_NAME, final)  # a running app may have it loaded
    run.write_record(
        steps_done=step,
        losses=[round(x, 6) for x in losses],
        finished=not cancelled,
        cancelled=cancelled,
        final_weights=final.name if final else run.record.get("final_weights"),
        seconds=round(time.monotonic() - began + float(previous.get("seconds", 0.0)), 1),
    )
    checkpoints = [path for _, path in ckpt.list_checkpoints(out)]
    report(
        "done",
        step,
        settings.steps,
        loss=losses[-1] if losses else None,
        elapsed=time.monotonic() - began,
        eta=0.0,
        latest_sample=run.samples[-1] if run.samples else None,
        checkpoint=run.latest_checkpoint,
    )
    del pipeline, models, trained, optimizer
    _free(device)
    return TrainResult(out, step, final, checkpoints, cancelled, losses, list(run.samples))


def setup_lora_training(
    models: dict[str, Any], settings: TrainSettings, device: torch.device, precision: Precision
) -> tuple[dict[str, Any], Any, Any]:
    """LoRA layers on ``models`` ("unet", plus the text encoders when trained), ready to train.

    Returns the trainable parameters by name, the optimizer and the gradient scaler (``None`` unless
    fp16). Public so benchmarks time the trainer's own setup rather than a copy that drifts from it.
    """
    import torch

    # LoRA layers are made on the CPU (seeded CPU RNG: the same seed gives the same LoRA on any
    # device), then everything moves to the device; the base weights are already in the weight dtype.
    for name, model in models.items():
        add_lora(model, settings, UNET_TARGET_MODULES if name == "unet" else TEXT_TARGET_MODULES)
    for model in models.values():
        model.to(device)
    trained = {f"{prefix}.{n}": p for prefix, m in models.items() for n, p in m.named_parameters() if p.requires_grad}
    for param in trained.values():
        param.data = param.data.float()  # LoRA weights in fp32 so small updates are not lost to rounding
    if settings.gradient_checkpointing:  # recompute activations in backward: less VRAM, ~20 % slower
        for name, model in models.items():
            if name == "unet":
                model.enable_gradient_checkpointing()
            else:
                model.gradient_checkpointing_enable()
    for model in models.values():
        model.train()
    optimizer = make_optimizer(list(trained.values()), settings, device)
    scaler = torch.amp.GradScaler("cuda") if precision.grad_scaler else None
    return trained, optimizer, scaler


def _train_step(
    pipeline: Any,
    models: dict[str, Any],
    cached: CachedDataset,
    noise_scheduler: Any,
    optimizer: Any,
    scaler: Any,
    generator: torch.Generator,
    run: _Run,
    inpaint: bool,
) -> float:
    """One optimizer step on a random batch; every random draw comes from ``generator`` (resumable)."""
    import torch

    from faceswap_core.training.dataset import encode_text

    device, precision = run.device, run.precision
    indices = torch.randint(0, len(cached), (run.settings.batch_size,), generator=generator)
    batch = cached.batch(indices, generator)
    latents = batch["latents"]
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(indices),), generator=generator)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = prediction_target(noise_scheduler, latents, noise, timesteps)
    if inpaint:
        noisy = torch.cat([noisy, batch["mask"], batch["masked_latents"]], dim=1)
    autocast = torch.autocast(device.type, dtype=precision.autocast, enabled=precision.autocast is not None)
    with autocast:
        if "prompt_embeds" in batch:
            prompt_embeds, pooled = batch["prompt_embeds"], batch["pooled_embeds"]
        else:
            encoders = (models["text_encoder"], models["text_encoder_2"])
            prompt_embeds, pooled = encode_text(encoders, (batch["input_ids_1"], batch["input_ids_2"]))
        prediction = models["unet"](
            noisy.to(device),
            timesteps.to(device),
            encoder_hidden_states=prompt_embeds.to(device),
            added_cond_kwargs={"text_embeds": pooled.to(device), "time_ids": batch["time_ids"].to(device)},
            return_dict=False,
        )[0]
    loss = torch.nn.functional.mse_loss(prediction.float(), target.to(device).float(), reduction="mean")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _state(step: int, losses: list[float], optimizer: Any, generator: Any, scaler: Any) -> ckpt.TrainingState:
    scaler_state = dict(scaler.state_dict()) if scaler is not None else None
    return ckpt.TrainingState(step, list(losses), optimizer.state_dict(), generator.get_state(), scaler_state)


def _free(device: torch.device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
