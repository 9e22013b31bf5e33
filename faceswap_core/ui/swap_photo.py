"""The Swap tab's photo: the full-size original kept on the server, the editor's numbered copy, its faces,
what each face becomes, and the masks painted on the copy.

The editor works on a display-sized copy of the photo (faces numbered on it) while the full-size
original stays in a bounded :class:`PhotoStore`, so a 24 MP phone photo is moved and decoded once,
and the result is still full size and pixel-exact outside the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from faceswap_core.errors import SettingsError
from faceswap_core.face_choice import NEW_FACE, FaceChoice
from faceswap_core.faces.detect import Face
from faceswap_core.faces.masks import face_mask, mask_scale
from faceswap_core.faces.parser import FaceParser
from faceswap_core.photo_store import PhotoStore
from faceswap_core.settings import (
    MASK_FEATHER_FRACTION,
    MASK_FEATHER_PX,
    MASK_GROW_FRACTION,
    MASK_GROW_PX,
    MASK_OCCLUSION,
    MaskSettings,
)
from faceswap_core.ui import guards
from faceswap_core.ui.common import editor_value

NO_FACE_NOTE = (
    "No face found: paint over the area to replace with the brush, then press Generate (a face more than "
    "about half hidden, by a hand for instance, is not found)."
)
EDIT_NOTE = "The blue paint is exactly what gets replaced: touch it up with the brush and eraser."


@dataclass
class TargetPhoto:
    """The session's photo: a key to the full-size original, the editor's numbered copy, its faces and their people.

    The original itself stays in a bounded :class:`PhotoStore` with expiry, not in the session's state.
    """

    store: PhotoStore = field(repr=False)
    key: str  # the original's key in ``store``
    size: tuple[int, int]  # the original's width and height
    display: Path  # the numbered display copy the editor shows (a file, so the browser caches it)
    scale: float  # display size / original size
    faces: list[Face]  # found on the original, largest first
    choices: dict[int, FaceChoice] = field(default_factory=dict)  # face index -> choice; absent = keep
    before: Path | None = None  # the comparison's "before": a display-size copy without numbers, made once
    last: tuple[str, str, str, dict[str, Any]] | None = None  # the last result: before, after, download, record
    painted: bytes | None = None  # the mask (PNG) of the last request, for a reload to bring back

    @property
    def original(self) -> Image.Image:
        return self.store.get(self.key)

    @property
    def display_size(self) -> tuple[int, int]:
        return round(self.size[0] * self.scale), round(self.size[1] * self.scale)


def display_copy(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at the editor's size (the comparison's size)."""
    return image if image.size == size else image.resize(size)


def editor(photo: TargetPhoto, mask: Image.Image | None) -> dict[str, Any]:
    """The editor's value: the numbered copy (by file) under ``mask`` as its one layer."""
    value = editor_value(Image.new("RGB", (1, 1)), mask)
    value["background"] = str(photo.display)
    return value


def face_picker(photo: TargetPhoto, index: int) -> Any:
    """The face dropdown for the photo's faces, with face ``index`` chosen."""
    if not photo.faces:
        return gr.Dropdown(choices=[("No face found", 0)], value=0, interactive=False)
    labels = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(photo.faces))]
    return gr.Dropdown(choices=labels, value=index, interactive=len(photo.faces) > 1)


def face_index(photo: TargetPhoto, index: Any) -> int:
    """The face picker's value, checked against the faces found (public endpoint)."""
    face = int(guards.number(index if index is not None else 0, "face"))
    if not 0 <= face < max(1, len(photo.faces)):
        raise SettingsError(f"there is no face {face + 1}; {len(photo.faces)} face(s) were found")
    return face


def summary(photo: TargetPhoto, replaced: Mapping[int, str] | None = None) -> str:
    """One line of what every face becomes, when there are several; ``replaced``: the person each face just
    had instead (said, so a face given someone else never changes without a word)."""
    if len(photo.faces) < 2:
        return ""
    parts = []
    for index in range(len(photo.faces)):
        choice = photo.choices.get(index)
        if choice is None:
            parts.append(f"{index + 1}: kept")
        else:
            likeness = "" if not choice.likeness else f", likeness {choice.likeness:g}"
            was = f", was {replaced[index]}" if replaced and index in replaced else ""
            parts.append(f"{index + 1}: **{choice.person or NEW_FACE}** ({choice.strength:g}{likeness}{was})")
    return "Faces → " + " · ".join(parts)


def auto_mask(
    photo: TargetPhoto, sizes: MaskSettings, only: int | None = None, parser: FaceParser | None = None
) -> Image.Image:
    """The union of the automatic masks of the faces that get a person (or of face ``only``), display size;
    ``parser``: the engine's face parser, so the editor shows what Generate will leave out."""
    chosen = [only] if only is not None else sorted(photo.choices)
    union = np.zeros(photo.display_size[::-1], dtype=np.uint8)
    shown = photo.original.resize(photo.display_size) if sizes.occlusion and photo.scale != 1.0 else photo.original
    for index in chosen:
        face = photo.faces[index].scaled(photo.scale)
        grow = None if sizes.grow is None else sizes.grow * photo.scale
        feather = None if sizes.feather is None else sizes.feather * photo.scale
        image = shown if sizes.occlusion else None  # hands and objects in front of the face are cut out
        mask = face_mask(photo.display_size, face, grow=grow, feather=feather, image=image, parser=parser)
        np.maximum(union, np.asarray(mask), out=union)
    return Image.fromarray(union, mode="L")


def mask_settings(fields: Mapping[str, Any]) -> MaskSettings:
    """The Mask size controls: sized from the face, or the grow and feather sliders (photo pixels)."""
    occlusion = fields.get("occlusion", MASK_OCCLUSION)
    if fields.get("size_from_face", True):
        sizes = MaskSettings(occlusion=occlusion)
        sizes.validate()
        return sizes
    grow, feather = guards.number(fields["grow"], "grow"), guards.number(fields["feather"], "feather")
    sizes = MaskSettings(grow=grow, feather=feather, occlusion=occlusion)
    sizes.validate()
    return sizes


def mask_sizes(photo: TargetPhoto | None) -> tuple[Any, Any]:
    """Grow and feather as the automatic mask sized them for face 1 (photo pixels), for the sliders to show."""
    if not isinstance(photo, TargetPhoto) or not photo.faces:
        return gr.skip(), gr.skip()
    width = mask_scale(photo.faces[0])
    grow = min(max(round(MASK_GROW_FRACTION * width), MASK_GROW_PX.minimum), MASK_GROW_PX.maximum)
    return grow, min(round(MASK_FEATHER_FRACTION * width), MASK_FEATHER_PX.maximum)
