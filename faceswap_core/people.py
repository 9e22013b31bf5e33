"""People: what the app swaps in. A person is a folder in ``lora_weights/``, ready from a few photos.

``NAME/dataset/`` holds the person's aligned face photos with ``metadata.csv`` (the layout the
trainer reads, so "train a LoRA" upgrades the same person in place); the LoRA and its checkpoints
appear beside it once trained. A person with photos only is swapped in through the image-prompt
adapter, a trained one through its LoRA and, when its photos are there, both. LoRA files from
elsewhere (kohya ``NAME.safetensors``, folders without photos) are people with a LoRA only.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from faceswap_core.dataset_file import METADATA_FILE, read_metadata
from faceswap_core.errors import DatasetError, ModelLoadError, SettingsError
from faceswap_core.identity_adapter import default_identity_scale
from faceswap_core.loras import LORA_NAME, LoraInfo, LoraRegistry, reference_photos
from faceswap_core.prepare import PrepareReport, prepare_dataset
from faceswap_core.settings import (
    CLASS_WORDS,
    DEFAULT_CLASS_WORD,
    DEFAULT_FACE_BACKEND,
    MAX_IDENTITY_PHOTOS,
    MAX_TRAIN_PHOTOS,
    SwapSettings,
)
from faceswap_core.training.checkpoints import DATASET_DIR as PHOTOS_DIR  # a person's photos are its training set


@dataclass(frozen=True)
class Person:
    """A pickable person: its registry name, aligned photos (maybe none) and LoRA (maybe none)."""

    name: str  # "anna", "anna/checkpoint-200" (a training step of anna), or a single-file LoRA's stem
    photos: tuple[Path, ...] = ()
    lora: LoraInfo | None = None

    @property
    def label(self) -> str:
        """What the picker shows, in the user's words (issue 21): the name and what the person is made of;
        a training step of a person is one of its saves."""
        person, _, step = self.name.partition("/checkpoint-")
        if step:
            return f"{person}, save at step {step}"
        count = f"{len(self.photos)} photo{'s' * (len(self.photos) != 1)}"
        if self.lora is None:
            return f"{self.name} ({count})"
        return f"{self.name} (trained + {count})" if self.photos else f"{self.name} (trained)"

    @property
    def class_word(self) -> str | None:
        """What the person is ("man", "woman", "person"), for the default prompt: from the LoRA's training
        record, else from the captions of the person's photos ("a photo of a man face, ..."); None if unknown."""
        word = self.lora.metadata.get("class_word") if self.lora is not None else None
        if word in CLASS_WORDS:
            return word
        if not self.photos:
            return None
        from faceswap_core.training.dataset import read_metadata

        try:
            captions = [item.caption for item in read_metadata(self.photos[0].parent)]
        except DatasetError:
            return None
        for caption in captions:
            found = _CAPTION_WORD.match(caption)
            if found and found.group(1) in CLASS_WORDS:
                return found.group(1)
        return None

    @property
    def likeness(self) -> float:
        """The default weight of the photos: full alone; lower beside a LoRA, which carries most of the likeness."""
        return default_identity_scale(self.lora is not None) if self.photos else 0.0

    def settings(self, base: SwapSettings, likeness: float | None = None) -> SwapSettings:
        """``base`` with this person's LoRA and photos (or ``base``'s own photos when the person has none).

        ``likeness`` is the photos' weight: None is the person's default, 0 leaves the photos out.
        """
        photos = tuple(str(photo) for photo in self.photos[:MAX_IDENTITY_PHOTOS]) or base.identity_photos
        default = self.likeness if self.photos else base.identity_scale
        scale = default if likeness is None else float(likeness)
        if scale is not None and scale <= 0:
            photos = ()
        return replace(
            base,
            lora=self.lora.name if self.lora is not None else None,
            identity_photos=photos,
            identity_scale=scale if photos else None,
        )


_CAPTION_WORD = re.compile(r"\s*a photo of an? (\w+) face\b")


class People:
    """Lists, finds and adds people in one folder; like the LoRA registry, it reads the disk on every call."""

    def __init__(self, loras: LoraRegistry) -> None:
        self.loras = loras

    @property
    def folder(self) -> Path:
        return self.loras.folder

    def list(self) -> list[Person]:
        """Every person, sorted by name; a trained person is followed by its checkpoints, newest first."""
        found: dict[Path, tuple[Path, ...]] = {}  # a person's checkpoints share its photos: look them up once

        def photos(info: LoraInfo) -> tuple[Path, ...]:
            folder = _person_folder(info)
            if folder not in found:
                found[folder] = tuple(_photos_of(info))
            return found[folder]

        people = [Person(info.name, photos(info), info) for info in self.loras.list()]
        named = {person.name for person in people}
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if (
                    entry.name not in named
                    and not entry.name.startswith(".")
                    and LORA_NAME.match(entry.name)
                    and self.loras.can_see(entry.name)
                ):
                    photos = photos_in(entry / PHOTOS_DIR)
                    if photos:
                        people.append(Person(entry.name, tuple(photos)))
        return sorted(people, key=lambda person: _sort_key(person.name))

    def names(self) -> list[str]:
        return [person.name for person in self.list()]

    def get(self, name: str) -> Person:
        """A person by registry name only (what the app lists); the message names no folder."""
        text = str(name or "").strip()
        person = self._find(text)
        if person is None:
            shown = text if len(text) <= 60 else text[:60] + "..."
            raise ModelLoadError(f"person {shown!r} not found; pick one from the list or add them first")
        return person

    def resolve(self, name_or_path: str | os.PathLike) -> Person:
        """A person by name, or (command line) a LoRA file or folder given by path, with its photos if it has any."""
        text = str(name_or_path).strip()
        if not self.loras.allow_paths:
            return self.get(text)
        person = self._find(text)
        if person is None:
            info = self.loras.resolve(text)
            person = Person(info.name, tuple(_photos_of(info)), info)
        return person

    def _find(self, name: str) -> Person | None:
        return next((person for person in self.list() if person.name == name), None)

    def add(
        self,
        name: str,
        photos: Sequence[str | os.PathLike],
        *,
        class_word: str = DEFAULT_CLASS_WORD,
        backend: str = DEFAULT_FACE_BACKEND,
        on_photo: Callable[[str, Path | None, str | None], None] | None = None,
    ) -> tuple[Person, PrepareReport]:
        """Align ``photos`` into a new person ``name``; seconds of CPU, no training.

        Photos without a face (or with several) are skipped and reported; nothing is written unless
        at least one photo is usable, and a half-written person never shows up in the picker.
        """
        name = check_person_name(name)
        self.loras.check_new_name(name)
        if not photos:
            raise DatasetError("no photos were given; add 1-5 photos where the person's face is clearly visible")
        if len(photos) > MAX_TRAIN_PHOTOS:
            raise DatasetError(f"{len(photos)} photos given; a person takes at most {MAX_TRAIN_PHOTOS}")
        self.folder.mkdir(parents=True, exist_ok=True)
        owner = self.loras.current_viewer()
        self.loras.owners.claim(name, owner)  # before it appears: never visible to others for a moment
        try:
            with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=self.folder) as work:
                staged = Path(work) / name
                report = prepare_dataset(
                    photos, staged / PHOTOS_DIR, class_word=class_word, backend=backend, on_photo=on_photo
                )
                try:
                    staged.rename(self.folder / name)  # one step: the picker sees the whole person or none
                except OSError:
                    raise SettingsError(f"a person named {name!r} was just added; choose another name") from None
        except BaseException:
            if not (self.folder / name).exists():
                self.loras.owners.release(name, owner)
            raise
        return self.get(name), report


def check_person_name(name: str) -> str:
    """A folder name that stays inside the people folder: letters, digits, ``._-``, starting with a letter or digit."""
    text = str(name or "").strip()
    if not text:
        raise SettingsError("give the person a name")
    if len(text) > 64 or not LORA_NAME.match(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise SettingsError(
            f"name {shown!r}: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return text


def photos_in(dataset: Path) -> list[Path]:
    """The photos a dataset folder's ``metadata.csv`` lists that exist, in its order."""

    if not (dataset / METADATA_FILE).is_file():
        return []
    try:
        return [item.image for item in read_metadata(dataset) if item.image.is_file()]
    except DatasetError:
        return []


def _person_folder(info: LoraInfo) -> Path:
    """The folder a LoRA belongs to: its own, or its person's for a checkpoint."""
    return info.path.parent.parent if info.metadata.get("checkpoint_step") is not None else info.path.parent


def _photos_of(info: LoraInfo) -> list[Path]:
    """A LoRA's photos: those its training record names, else its folder's dataset (none for a single file)."""
    listed = reference_photos(info)
    if listed:
        return listed
    folder = _person_folder(info)
    return photos_in(folder / PHOTOS_DIR) if folder.name == info.name.split("/")[0] else []


def _sort_key(name: str) -> tuple[str, int]:
    """Names alphabetically; a person's checkpoints after it, newest first (as the LoRA registry lists them)."""
    base, _, checkpoint = name.partition("/checkpoint-")
    return base.lower(), -int(checkpoint) if checkpoint.isdigit() else -(10**12)
