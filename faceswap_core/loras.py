"""The LoRA registry over ``lora_weights/``: what can be picked, by which name, and that it is safe to load.

Layouts found (what diffusers' trainers and model sites produce):
``NAME/pytorch_lora_weights.safetensors`` (+ ``NAME/training.json`` from our trainer),
``NAME/checkpoint-STEP/pytorch_lora_weights.safetensors`` (listed as ``NAME/checkpoint-STEP``) and a
single ``NAME.safetensors`` (kohya style). Only safetensors: pickles (.bin/.pt/.ckpt) can run code
when unpickled, so they are refused by suffix AND by content, never opened with torch.load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceswap_core.errors import ModelLoadError, SettingsError, UnsafeWeightsError
from faceswap_core.owners import Owners

LORA_FILE = "pytorch_lora_weights.safetensors"
TRAINING_FILE = "training.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
MAX_PATH_CHARS = 1024  # longer "names" are refused before they reach the file system (ENAMETOOLONG)
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # where diffusers keeps the peft config (alpha, rank) of a LoRA
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a LoRA folder name; the trainer writes only these
_NAME = re.compile(LORA_NAME.pattern.removesuffix("$") + r"(/checkpoint-\d+)?$")
log = logging.getLogger("faceswap.loras")
_warned: set[tuple[str, int]] = set()  # (file, mtime) of the bad files already reported


@dataclass
class LoraInfo:
    """One pickable LoRA: its registry name, the .safetensors file, and training metadata if known."""

    name: str
    path: Path
    metadata: dict = field(default_factory=dict)


def check_safe_weights(path: str | os.PathLike) -> None:
    """Refuse anything but a real, complete safetensors file, without unpickling it.

    The suffix check catches the usual .bin/.pt/.ckpt; the header check catches a pickle renamed to
    .safetensors (safetensors files start with an 8-byte little-endian length and a JSON object), and
    a file cut short (its header promises more tensor bytes than follow it).
    """
    file = Path(path)
    _check_suffix(file)
    if not file.is_file():
        raise ModelLoadError(f"{file}: no such weights file")
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        valid = 2 <= length <= min(MAX_HEADER_BYTES, size - 8)
        header = handle.read(length) if valid else b""
    _parse_header(file, head, header, size)


def _check_suffix(file: Path) -> None:
    suffix = file.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeWeightsError(
            f"{file}: {suffix} weights are pickles that can run code when loaded; convert them to .safetensors"
        )
    if suffix != ".safetensors":
        raise UnsafeWeightsError(
            f"{file}: only .safetensors weights are accepted, not {suffix or 'a file without suffix'}"
        )


def _parse_header(file: Path, head: bytes, header: bytes, size: int) -> dict[str, Any]:
    """The JSON header of a safetensors file whose tensor data is all there, or :class:`UnsafeWeightsError`."""
    try:
        parsed = json.loads(header.decode("utf-8")) if header[:1] == b"{" else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        kind = "a pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "not a safetensors file"
        raise UnsafeWeightsError(f"{file}: named .safetensors but the content is {kind}; refusing to load it")
    ends = []
    for key, entry in parsed.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not _offsets_valid(offsets):
            raise UnsafeWeightsError(f"{file}: malformed safetensors header (tensor {key[:60]!r}); refusing to load it")
        ends.append(offsets[1])
    needed = 8 + len(header) + max(ends, default=0)
    if needed > size:
        raise ModelLoadError(f"{file}: the file is truncated ({size} of {needed} bytes); copy it again")
    return parsed


def _offsets_valid(offsets: Any) -> bool:
    """``[start, end]``: two whole numbers, 0 <= start <= end (JSON also allows nesting, floats and 1e400)."""
    return (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(value) is int for value in offsets)
        and 0 <= offsets[0] <= offsets[1]
    )


def read_lora(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The tensors of a LoRA file, copied into memory, and diffusers' adapter metadata from its header.

    Why in memory: tensors loaded from a memory-mapped file keep reading that file, and a LoRA
    overwritten in place (``cp``, ``scp``) while loaded would kill the process with SIGBUS. Reading
    the bytes once also means the checks and the tensors see the same content.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    file = Path(path)
    _check_suffix(file)
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ModelLoadError(f"{file}: cannot read the weights ({err.strerror or err})") from None
    length = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
    valid = 2 <= length <= min(MAX_HEADER_BYTES, len(data) - 8)
    header = _parse_header(file, data[:8], data[8 : 8 + length] if valid else b"", len(data))
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise ModelLoadError(f"{file}: not a readable safetensors file ({err})") from None
    raw = (header.get("__metadata__") or {}).get(ADAPTER_METADATA_KEY)
    try:
        adapter = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        adapter = None
    return tensors, adapter if isinstance(adapter, dict) else None


def load_lora_into(pipeline: Any, path: str | os.PathLike, adapter_name: str) -> None:
    """Load a LoRA file into an SDXL pipeline as ``adapter_name``, from memory (see :func:`read_lora`).

    This is what ``load_lora_weights`` does for a file, minus the memory map: diffusers takes the
    adapter metadata (alpha and rank) only from a file, so it is passed along explicitly here.
    """
    tensors, metadata = read_lora(path)
    state, alphas, _ = pipeline.lora_state_dict(tensors, unet_config=pipeline.unet.config, return_lora_metadata=True)
    if not all("lora" in key for key in state):
        raise ModelLoadError(f"{path}: not a LoRA (some parameter names do not contain 'lora')")
    # diffusers logs the whole list of mismatched layers (hundreds of lines) before raising; one line is ours.
    peft_log = logging.getLogger("diffusers.loaders.peft")
    level = peft_log.level
    peft_log.setLevel(logging.CRITICAL)
    try:
        _load_state(pipeline, state, alphas, metadata, adapter_name)
    except Exception as err:
        _drop_adapter(pipeline, adapter_name)
        found = re.search(r"size mismatch for ([^:]+): copying a param with shape (\S+ \S+)", str(err))
        if not found:
            raise
        raise ModelLoadError(
            f"{path}: the LoRA does not fit this base model (layer {found.group(1)} has shape "
            f"{found.group(2).removeprefix('torch.Size(').rstrip(')')} in the file); was it trained on another model?"
        ) from None
    finally:
        peft_log.setLevel(level)


def _load_state(pipeline: Any, state: dict[str, Any], alphas: Any, metadata: Any, adapter_name: str) -> None:
    pipeline.load_lora_into_unet(
        state,
        network_alphas=alphas,
        unet=pipeline.unet,
        adapter_name=adapter_name,
        _pipeline=pipeline,
        metadata=metadata,
    )
    for prefix in ("text_encoder", "text_encoder_2"):
        if not any(key.startswith(f"{prefix}.") for key in state):
            continue  # most face LoRAs train the UNet only; diffusers would warn about each encoder
        pipeline.load_lora_into_text_encoder(
            state,
            network_alphas=alphas,
            text_encoder=getattr(pipeline, prefix),
            prefix=prefix,
            lora_scale=pipeline.lora_scale,
            adapter_name=adapter_name,
            _pipeline=pipeline,
            metadata=metadata,
        )


def _drop_adapter(pipeline: Any, adapter_name: str) -> None:
    """Remove a half-loaded adapter (peft warns that the active adapter changes; that is the point)."""
    try:
        loaded = {name for names in pipeline.get_list_adapters().values() for name in names}
    except (AttributeError, ValueError):
        return
    if adapter_name in loaded:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.delete_adapters(adapter_name)


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors header (kohya files keep their training notes there)."""
    with path.open("rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(length).decode("utf-8"))
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


class LoraRegistry:
    """Lists and resolves LoRAs in one folder; reads the disk on every call so new training shows up.

    ``allow_paths=False`` (the web app) makes a LoRA a registry name and nothing else: no path, no
    upload, and messages that name no server folder. The command line, run by the machine's own
    user, keeps accepting paths.
    """

    def __init__(self, folder: str | os.PathLike = "lora_weights", *, allow_paths: bool = True) -> None:
        self.folder = Path(folder)
        self.allow_paths = allow_paths
        # Who is asking (see faceswap_core.owners): None, or a function that says None, sees every LoRA.
        self.viewer: Callable[[], str | None] | None = None

    @property
    def owners(self) -> Owners:
        return Owners(self.folder)

    def current_viewer(self) -> str | None:
        return self.viewer() if self.viewer is not None else None

    def can_see(self, name: str) -> bool:
        return self.owners.can_see(name, self.current_viewer())

    def can_change(self, name: str) -> bool:
        return self.owners.can_change(name, self.current_viewer())

    def list(self) -> list[LoraInfo]:
        """Every safe LoRA, sorted by name; a trained LoRA is followed by its checkpoints, newest first."""
        if not self.folder.is_dir():
            return []
        found: list[LoraInfo] = []
        for entry in sorted(self.folder.iterdir(), key=lambda p: p.name.lower()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                found.extend(self._folder_entries(entry))
            elif entry.suffix.lower() == ".safetensors" and _is_safe(entry):
                found.append(LoraInfo(entry.stem, entry, _file_metadata(entry)))
        viewer = self.current_viewer()
        if viewer is None:
            return found
        owners = self.owners
        return [info for info in found if owners.can_see(info.name, viewer)]

    def names(self) -> list[str]:
        return [info.name for info in self.list()]

    def get(self, name: str) -> LoraInfo:
        """A LoRA by its registry name only (what the app's picker lists); the message names no folder."""
        text = str(name or "").strip()
        for info in self.list():
            if info.name == text:
                return info
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise ModelLoadError(f"LoRA {shown!r} not found; pick one of this app's LoRAs from the list")

    def resolve(self, name_or_path: str | os.PathLike) -> LoraInfo:
        """A registry name ("NAME" or "NAME/checkpoint-STEP") or, when paths are allowed, a file or LoRA folder."""
        if not self.allow_paths:
            return self.get(str(name_or_path))
        text = str(name_or_path).strip()
        if not text:
            raise ModelLoadError("no LoRA name given")
        if len(text) > MAX_PATH_CHARS:
            raise ModelLoadError(f"LoRA {text[:40]!r}...: {len(text)} characters is too long for a name or path")
        path = Path(text).expanduser()
        exists = _exists(path)
        if exists and (path.is_absolute() or text.startswith(".") or not _NAME.match(text)):
            return self._from_path(path)
        if not _NAME.match(text):
            raise ModelLoadError(f"LoRA {text!r}: no such file or folder, and not a valid LoRA name")
        candidate = self.folder / text
        if candidate.is_dir():
            return self._from_path(candidate, name=text)
        for suffix in (".safetensors", *PICKLE_SUFFIXES):
            file = self.folder / f"{text}{suffix}"
            if file.is_file():
                return self._from_path(file, name=text)
        if exists:
            return self._from_path(path)
        known = ", ".join(self.names()[:10]) or "none"
        raise ModelLoadError(f"LoRA {text!r} not found in {self.folder} (available: {known})")

    def check_new_name(self, name: str) -> None:
        """Refuse a new LoRA name that would hide or replace an existing LoRA file or folder of that name."""
        taken = [self.folder / name] + [
            self.folder / f"{name}{suffix}" for suffix in (".safetensors", *PICKLE_SUFFIXES)
        ]
        if any(_exists(path) or path.is_symlink() for path in taken):
            raise SettingsError(f"a person or LoRA named {name!r} already exists; choose another name")

    def _folder_entries(self, folder: Path) -> list[LoraInfo]:
        entries: list[LoraInfo] = []
        main = _weights_in(folder)
        metadata = _folder_metadata(folder)
        if main is not None and _is_safe(main):
            entries.append(LoraInfo(folder.name, main, metadata))
        checkpoints = [
            (int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
        ]
        for step, checkpoint in sorted(checkpoints, reverse=True):
            file = checkpoint / LORA_FILE
            if file.is_file() and _is_safe(file):
                entries.append(
                    LoraInfo(f"{folder.name}/{checkpoint.name}", file, {**metadata, "checkpoint_step": step})
                )
        return entries

    def _from_path(self, path: Path, *, name: str | None = None) -> LoraInfo:
        if path.is_dir():
            file = _weights_in(path)
            if file is None:
                pickles = [p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
                if pickles:
                    check_safe_weights(path / pickles[0])
                raise ModelLoadError(f"{path}: the folder has no {LORA_FILE} (or single .safetensors file)")
            check_safe_weights(file)
            step = _CHECKPOINT.match(path.name)
            if step:
                metadata = {**_folder_metadata(path.parent), "checkpoint_step": int(step.group(1))}
                label = name or f"{path.parent.name}/{path.name}"
            else:
                metadata = _folder_metadata(path)
                label = name or path.name
            return LoraInfo(label, file, metadata or _file_metadata(file))
        check_safe_weights(path)
        return LoraInfo(name or path.stem, path, _file_metadata(path))


def _exists(path: Path) -> bool:
    """``path.exists()`` that says False for names the file system refuses (too long, bad bytes)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def reference_photos(info: LoraInfo) -> list[Path]:
    """The training photos listed in a LoRA's metadata that still exist (relative ones are in its folder)."""
    folder = info.path.parent
    if _CHECKPOINT.match(folder.name):
        folder = folder.parent
    photos = []
    for entry in info.metadata.get("reference_photos") or []:
        path = Path(str(entry))
        path = path if path.is_absolute() else folder / path
        if _exists(path) and path.is_file():
            photos.append(path)
    return photos


def _weights_in(folder: Path) -> Path | None:
    """The LoRA file of a folder: diffusers' standard name, else its only .safetensors file."""
    standard = folder / LORA_FILE
    if standard.is_file():
        return standard
    files = [p for p in folder.glob("*.safetensors") if p.is_file()]
    return files[0] if len(files) == 1 else None


def _is_safe(path: Path) -> bool:
    """Whether a listed file may be offered; a bad one is left out with one warning (not one per listing)."""
    try:
        check_safe_weights(path)
    except (UnsafeWeightsError, ModelLoadError, OSError) as err:
        _warn_once(path, str(err))
        return False
    return True


def _warn_once(path: Path, reason: str) -> None:
    with contextlib.suppress(OSError):
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _warned:
            _warned.add(key)
            log.warning("LoRA skipped: %s", reason.replace(str(path), path.name))


def _folder_metadata(folder: Path) -> dict:
    """training.json as written by the trainer; an unreadable one is reported, not fatal."""
    file = folder / TRAINING_FILE
    if not file.is_file():
        weights = _weights_in(folder)
        return _file_metadata(weights) if weights is not None and _is_safe(weights) else {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {"error": f"{TRAINING_FILE} unreadable: {err}"}
    if not isinstance(data, dict):
        return {"error": f"{TRAINING_FILE} is not a JSON object"}
    if "steps_done" not in data:  # not the trainer's record
        return data
    return {**data, "steps_done": _steps_on_disk(folder, data["steps_done"])}


def _steps_on_disk(folder: Path, recorded: Any) -> int:
    """Steps done as the checkpoints show them: a training killed between a checkpoint and its record's
    next write leaves ``steps_done`` a checkpoint behind."""
    steps = [
        int(m.group(1)) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and (p / LORA_FILE).is_file()
    ]
    return max([*steps, recorded if isinstance(recorded, int) else 0])


def _file_metadata(path: Path) -> dict:
    try:
        return dict(safetensors_metadata(path))
    except (OSError, ValueError, struct.error):
        return {}
