"""Where a LoRA is written, and how training state is saved and restored without pickles.

Layout of one LoRA (what the engine's registry reads)::

    lora_dir/NAME/pytorch_lora_weights.safetensors      final weights (diffusers format)
    lora_dir/NAME/training.json                          base model, captions, settings, checkpoints
    lora_dir/NAME/checkpoint-STEP/pytorch_lora_weights.safetensors
    lora_dir/NAME/checkpoint-STEP/training_state.{safetensors,json}   latest checkpoint only: resume
    lora_dir/NAME/samples/step-STEP.png                  one sample image per checkpoint
    lora_dir/NAME/dataset/                               the prepared crops, when raw photos were given

Why no pickle: ``torch.save`` of an optimizer state is a pickle, and a pickle can run code when
loaded. Tensors (LoRA parameters, optimizer moments, RNG state) go into safetensors and everything
else (step, losses, optimizer hyper-parameters) into JSON, so resuming reads only inert data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import SettingsError
from faceswap_core.files import atomic_path, write_text
from faceswap_core.loras import LORA_FILE as WEIGHTS_NAME
from faceswap_core.loras import LORA_NAME
from faceswap_core.loras import TRAINING_FILE as TRAINING_JSON
from faceswap_core.settings import TrainSettings

if TYPE_CHECKING:
    import torch

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
CHECKPOINT_PREFIX = "checkpoint-"
SAMPLES_DIR = "samples"
DATASET_DIR = "dataset"
MAX_NAME_CHARS = 100


def sanitize_name(name: str) -> str:
    """A LoRA name that is one safe folder name, or :class:`SettingsError` saying what is wrong."""
    cleaned = str(name).strip()
    if not cleaned:
        raise SettingsError("the LoRA name is empty; give a name such as 'anna'")
    if "/" in cleaned or "\\" in cleaned or os.sep in cleaned:
        raise SettingsError(f"LoRA name {cleaned!r} contains a slash; use a plain name such as 'anna'")
    if cleaned.startswith("."):
        raise SettingsError(f"LoRA name {cleaned!r} starts with a dot (a hidden or parent folder); use a plain name")
    if ".." in cleaned:
        raise SettingsError(f"LoRA name {cleaned!r} contains '..'; use a plain name such as 'anna'")
    if len(cleaned) > MAX_NAME_CHARS:
        raise SettingsError(f"LoRA name {cleaned[:20]!r}... is longer than {MAX_NAME_CHARS} characters")
    if not LORA_NAME.match(cleaned):
        raise SettingsError(f"LoRA name {cleaned!r} may only use letters, digits, '.', '-' and '_'")
    return cleaned


def resolve_output_dir(output: str | os.PathLike, lora_dir: str | os.PathLike) -> Path:
    """``lora_dir/NAME`` for a name (any string); the folder itself only for a ``Path``.

    Strings are always names, so a name typed into the UI can never leave the LoRA folder (not even
    ``/abs/path`` or ``//x``); the command line turns arguments with a slash into ``Path`` objects on purpose.
    """
    if isinstance(output, os.PathLike):
        folder = Path(output).expanduser()
        sanitize_name(folder.name)  # no hidden folder, no trailing "..", no empty name
        return folder
    return Path(lora_dir).expanduser() / sanitize_name(str(output))


def check_new_output(folder: Path) -> None:
    """Refuse to overwrite an existing LoRA folder: training into it again needs ``resume``."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise SettingsError(f"{folder} already exists; choose another name, delete it, or resume it with --resume")


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"{CHECKPOINT_PREFIX}{step}"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint with weights, in step order."""
    found = []
    for child in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        step = child.name.removeprefix(CHECKPOINT_PREFIX)
        if step.isdigit() and (child / WEIGHTS_NAME).is_file():
            found.append((int(step), child))
    return sorted(found)


def latest_resumable(folder: Path) -> tuple[int, Path] | None:
    """The newest checkpoint that carries optimizer state, if any."""
    for step, path in reversed(list_checkpoints(folder)):
        if (path / STATE_TENSORS).is_file() and (path / STATE_JSON).is_file():
            return step, path
    return None


def stopped_at(folder: Path) -> int | None:
    """The step a training of ``folder`` stopped at before its end (killed, crashed or cancelled), or None.

    Read from the checkpoints on disk, not from ``training.json``: a kill between a checkpoint and the
    record's next write leaves the record a checkpoint behind.
    """
    found = latest_resumable(folder)
    if found is None:
        return None
    record = read_training_json(folder)
    asked = (record.get("settings") or {}).get("steps")
    finished = record.get("finished") or (isinstance(asked, int) and found[0] >= asked)
    return None if finished else found[0]


def resume_settings(folder: Path) -> TrainSettings:
    """The settings a stopped training of ``folder`` ran with (its record), to continue it unchanged."""
    saved = read_training_json(folder).get("settings")
    if not isinstance(saved, dict):
        raise SettingsError(f"{folder.name}: its training record is missing or unreadable; start it over")
    known = {field.name for field in fields(TrainSettings)}
    try:
        settings = TrainSettings(**{key: value for key, value in saved.items() if key in known})
        settings.validate()
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{folder.name}: its training record does not hold usable settings ({err})") from None
    return settings


def save_lora_weights(folder: Path, unet: Any, text_encoders: tuple[Any, ...] = ()) -> Path:
    """Write ``folder/pytorch_lora_weights.safetensors`` exactly as diffusers' LoRA trainers do.

    The adapter config goes into the file's metadata so ``load_lora_weights`` restores alpha/rank
    even when alpha differs from the rank.
    """
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    def layers(model: Any) -> dict[str, torch.Tensor]:
        return convert_state_dict_to_diffusers(get_peft_model_state_dict(model))

    def config(model: Any) -> dict[str, Any]:
        return model.peft_config["default"].to_dict()

    encoders = dict(zip(("text_encoder", "text_encoder_2"), text_encoders, strict=False))
    kwargs: dict[str, Any] = {"unet_lora_layers": layers(unet), "unet_lora_adapter_metadata": config(unet)}
    for name, encoder in encoders.items():
        kwargs[f"{name}_lora_layers"] = layers(encoder)
        kwargs[f"{name}_lora_adapter_metadata"] = config(encoder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_NAME) as scratch:  # a running app may have this LoRA loaded
        StableDiffusionXLPipeline.save_lora_weights(folder, weight_name=scratch.name, safe_serialization=True, **kwargs)
    return folder / WEIGHTS_NAME


@dataclass
class TrainingState:
    """Everything besides the model that a resumed run needs to continue where it stopped."""

    step: int
    losses: list[float]
    optimizer: dict[str, Any]  # torch optimizer.state_dict()
    generator_state: torch.Tensor  # the CPU generator that draws batches, noise and timesteps
    scaler: dict[str, Any] | None  # fp16 GradScaler state, when one is used


def save_state(folder: Path, params: dict[str, torch.Tensor], state: TrainingState) -> None:
    """Trainable parameters, optimizer tensors and RNG into safetensors; the rest into JSON."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {f"param.{name}": p.detach().to("cpu") for name, p in params.items()}
    tensors["rng.cpu"] = state.generator_state.clone()
    per_param: dict[str, dict[str, Any]] = {}
    for index, entry in state.optimizer["state"].items():
        plain: dict[str, Any] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                plain[key] = value
        per_param[str(index)] = plain
    meta = {
        "step": state.step,
        "losses": state.losses,
        "param_groups": state.optimizer["param_groups"],
        "optimizer_plain": per_param,
        "scaler": state.scaler,
    }
    with atomic_path(folder / STATE_TENSORS) as scratch:
        save_file(tensors, str(scratch))
    write_text(folder / STATE_JSON, json.dumps(meta, indent=1))


def load_state(folder: Path, params: dict[str, torch.Tensor]) -> TrainingState:
    """Copy the saved parameters into ``params`` (in place) and return the rest of the state."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / STATE_TENSORS))
    meta = json.loads((folder / STATE_JSON).read_text())
    missing = [name for name in params if f"param.{name}" not in tensors]
    if missing:
        raise SettingsError(
            f"{folder} does not match this training run (no saved value for {missing[0]}); "
            "resume with the same rank and text-encoder option"
        )
    with torch.no_grad():
        for name, param in params.items():
            saved = tensors[f"param.{name}"]
            if saved.shape != param.shape:
                raise SettingsError(
                    f"{folder}: {name} was saved with shape {tuple(saved.shape)}, this run has {tuple(param.shape)}; "
                    "resume with the same rank"
                )
            param.copy_(saved)
    optimizer_state: dict[Any, dict[str, Any]] = {}
    for index, plain in meta["optimizer_plain"].items():
        entry = dict(plain)
        prefix = f"optim.{index}."
        entry.update({key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)})
        optimizer_state[int(index)] = entry
    return TrainingState(
        step=int(meta["step"]),
        losses=[float(x) for x in meta["losses"]],
        optimizer={"state": optimizer_state, "param_groups": meta["param_groups"]},
        generator_state=tensors["rng.cpu"],
        scaler=meta.get("scaler"),
    )


def drop_old_states(folder: Path, keep: Path) -> None:
    """Only the newest checkpoint keeps its optimizer state (which is twice the LoRA's size)."""
    for _, path in list_checkpoints(folder):
        if path != keep:
            for name in (STATE_TENSORS, STATE_JSON):
                (path / name).unlink(missing_ok=True)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_training_json(folder: Path, record: dict[str, Any]) -> Path:
    """Write ``training.json`` atomically so the registry never reads half a file."""
    return write_text(folder / TRAINING_JSON, json.dumps(record, indent=2, default=str))


def read_training_json(folder: Path) -> dict[str, Any]:
    path = folder / TRAINING_JSON
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
