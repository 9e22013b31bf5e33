"""The Swap tab's faces: load a photo, give each face a person, strength, prompt and likeness, paint masks.

:class:`FaceHandlers` holds the tab's state (engine, people, photo store, result files, limits) and
turns the widgets, received by field name, into :class:`TargetPhoto` choices and, for Generate, a
:class:`SwapRequest`. The sections (adding a person, Try strengths) and the final
:class:`~faceswap_core.ui.swap_handlers.SwapHandlers` build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.face_choice import KEEP, NEW_FACE, NO_LORA, FaceChoice, choices_request, default_likeness, person_of
from faceswap_core.faces.badges import numbered
from faceswap_core.faces.detect import detect_faces
from faceswap_core.images import load_image, png_bytes
from faceswap_core.people import People, Person
from faceswap_core.photo_store import PhotoStore
from faceswap_core.requests import SwapRequest
from faceswap_core.settings import (
    EDITOR_MAX_SIDE,
    GUIDANCE,
    IDENTITY_SCALE,
    KEEP_EXPRESSION,
    LORA_SCALE,
    MAX_SEED,
    PADDING,
    STEPS,
    STRENGTH,
    MaskSettings,
    PublicLimits,
    Range,
    SwapSettings,
)
from faceswap_core.ui import guards
from faceswap_core.ui.common import ResultFiles, editor_image, editor_mask, user_errors
from faceswap_core.ui.person_picker import likeness_slider, person_choices
from faceswap_core.ui.swap_photo import (
    EDIT_NOTE,
    NO_FACE_NOTE,
    TargetPhoto,
    auto_mask,
    editor,
    face_index,
    face_picker,
    mask_settings,
    summary,
)

RANDOM_SEED = -1
SEED = Range(RANDOM_SEED, MAX_SEED, RANDOM_SEED, 1)  # -1: a new random seed each time


def seed_value(value: Any) -> int | None:
    """The seed box: -1 (or empty) means a new random seed each time."""
    if value is None or value == "":
        return None
    seed = int(guards.number(value, "seed", SEED, integer=True))
    return None if seed < 0 else seed


def likeness_value(value: Any) -> float | None:
    """The likeness slider: None is the person's default."""
    if value is None or value == "":
        return None
    return guards.number(value, "likeness", IDENTITY_SCALE)


def keep_expression_weight(fields: Mapping[str, Any]) -> float:
    """The ControlNet's weight: the slider's when the Keep expression switch is on."""
    if not fields.get("keep_expression_on", True):
        return 0.0
    weight = guards.number(fields.get("keep_expression") or 0.0, "keep expression weight")
    KEEP_EXPRESSION.check("keep expression weight", weight)
    return weight


def clean_text(value: Any, name: str) -> str:
    return guards.text(value, name).strip()


class FaceHandlers:
    """What the photo, face and mask controls do; plain values in and out, settings passed by field name."""

    def __init__(
        self,
        engine: Engine,
        files: ResultFiles | None = None,
        photos: PhotoStore | None = None,
        limits: PublicLimits | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or PublicLimits()
        self.files = files or ResultFiles()
        self.photos = photos or PhotoStore()
        self.people = People(engine.loras)

    # --- the photo ------------------------------------------------------------------------------
    @user_errors
    def load_photo(
        self, path: str | None, person: str | None, strength: float, prompt: str, likeness: float | None = None
    ) -> tuple[Any, ...]:
        """A photo from the upload button: checked from its header, kept full size, shown numbered."""
        if not path:
            raise gr.Error("Choose a photo to upload.")
        return self._show_photo(load_image(path, name="target photo"), person, strength, prompt, likeness)

    def _show_photo(
        self, image: Image.Image, person: str | None, strength: float, prompt: str, likeness: float | None = None
    ) -> tuple[Any, ...]:
        """State, editor value, face picker, note: the largest face gets the chosen person and its mask."""
        faces = detect_faces(image, backend=self.engine.landmarks, name="target photo")
        scale = min(1.0, EDITOR_MAX_SIDE / max(image.size))
        display = image if scale == 1.0 else image.resize((round(image.width * scale), round(image.height * scale)))
        shown = numbered(display, [face.scaled(scale) for face in faces])
        display_file = self.files.save_display(shown)
        photo = TargetPhoto(self.photos, self.photos.put(image), image.size, display_file, scale, faces)
        if faces:
            strength = guards.number(strength, "strength", STRENGTH)  # as the request checks it: said now
            choice = FaceChoice(self._person(person), strength, clean_text(prompt, "prompt"), likeness_value(likeness))
            photo.choices[0] = choice
            count = "1 face found" if len(faces) == 1 else f"{len(faces)} faces found, numbered on the photo"
            note = f"{count}; face 1 is masked. {EDIT_NOTE}"
        else:
            note = NO_FACE_NOTE
        mask = self.masks_of(photo, MaskSettings()) if faces else None
        return photo, editor(photo, mask), face_picker(photo, 0), summary(photo), note

    def masks_of(self, photo: TargetPhoto, sizes: MaskSettings, only: int | None = None) -> Image.Image:
        """:func:`auto_mask` with the engine's face parser: the editor shows what Generate will leave out."""
        return auto_mask(photo, sizes, only, parser=self.engine.face_parser())

    def _photo(self, fields: Mapping[str, Any]) -> TargetPhoto:
        """The session's photo; a caller without a session sends the editor's background instead."""
        photo = fields.get("photo")
        background = editor_image(fields.get("editor")) if photo is None else None
        if photo is None and background is None:
            raise gr.Error("Upload a target photo first (or click the example below).")
        if photo is None:
            faces = detect_faces(background, backend=self.engine.landmarks, name="target photo")
            photo = TargetPhoto(self.photos, self.photos.put(background), background.size, Path(), 1.0, faces)
            person = self._person(fields.get("person"))
            if faces and person != KEEP:
                photo.choices[0] = self._choice(fields, person)
        return photo

    # --- people ---------------------------------------------------------------------------------
    def _person(self, person: str | None) -> str:
        """A person from the picker: a name the people folder lists now, never a path (public endpoint)."""
        name = guards.text(person, "person", max_chars=300).strip()
        if name in (NO_LORA, KEEP):
            return name
        return self.people.get(name).name

    def _who(self, person: str | None) -> Person:
        """The person behind a checked picker value ("" is the base model: no LoRA, no photos of its own)."""
        return person_of(self.people, self._person(person))

    def _choice(self, fields: Mapping[str, Any], person: str) -> FaceChoice:
        """The face's choice from the controls: ``person`` (checked) with the strength, prompt and likeness."""
        # checked as the request will be: the summary never shows a strength that cannot run
        strength = guards.number(fields.get("strength"), "strength", STRENGTH)
        prompt = clean_text(fields.get("prompt"), "prompt")
        return FaceChoice(person, strength, prompt, likeness_value(fields.get("likeness")))

    # --- faces and masks ------------------------------------------------------------------------
    @user_errors
    def auto_mask(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Repaint the mask layer: the automatic masks of every face that gets a person (touch-ups are reset)."""
        photo = self._photo(fields)
        if not photo.faces:
            raise gr.Error(NO_FACE_NOTE)
        if not photo.choices:
            raise gr.Error("Every face is set to 'Keep this face': choose a person for at least one face first.")
        mask = self.masks_of(photo, mask_settings(fields))
        masked = ", ".join(str(i + 1) for i in sorted(photo.choices))
        return editor(photo, mask), f"Masked faces {masked}. {EDIT_NOTE}"

    @user_errors
    def choose_face(self, photo: TargetPhoto | None, index: Any, uploaded: Any = None) -> tuple[Any, Any, Any, Any]:
        """The face picker moved: show that face's person, strength, prompt and likeness (a new face is 'keep')."""
        if photo is None or not photo.faces:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        face = face_index(photo, index)
        choice = photo.choices.get(face)
        if choice is None:
            picker = gr.Dropdown(choices=person_choices(self.engine), value=KEEP, label=f"Person for face {face + 1}")
            return picker, gr.skip(), gr.skip(), likeness_slider(None, False)
        picker = gr.Dropdown(
            choices=person_choices(self.engine), value=choice.person, label=f"Person for face {face + 1}"
        )
        slider = likeness_slider(self._who(choice.person), bool(guards.uploaded_photos(uploaded)), choice.likeness)
        return picker, choice.strength, choice.prompt, slider

    @user_errors
    def assign(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto, Any, str, str, Any]:
        """The chosen face gets the picked person (its mask is added; the likeness starts at the person's
        default), or is kept (its mask is removed)."""
        person = self._person(fields.get("person"))
        uploaded = bool(guards.uploaded_photos(fields.get("references")))
        slider = likeness_slider(None if person == KEEP else self._who(person), uploaded)
        if fields.get("photo") is None and editor_image(fields.get("editor")) is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), slider  # picked before the photo: it gets this person
        photo = self._photo(fields)
        if not photo.faces:
            return photo, gr.skip(), "", gr.skip(), slider
        face = face_index(photo, fields.get("face"))
        painted = editor_mask(fields.get("editor"))
        layer = np.zeros(photo.display_size[::-1], np.uint8) if painted is None else np.asarray(painted).copy()
        own = np.asarray(self.masks_of(photo, mask_settings(fields), only=face))
        before = photo.choices.get(face)
        replaced = {}  # on a group photo, a person taken off a face is said, not dropped without a word
        if person == KEEP:
            photo.choices.pop(face, None)
            layer[own > 0] = 0
            note = f"Face {face + 1} is kept as it is."
        else:
            likeness = default_likeness(self._who(person), uploaded)
            photo.choices[face] = replace(self._choice(fields, person), likeness=likeness)
            np.maximum(layer, own, out=layer)
            note = f"Face {face + 1} → {person or NEW_FACE}"
            if before is not None and before.person != person and len(photo.faces) > 1:
                replaced[face] = before.person or NEW_FACE
                note += f" instead of {replaced[face]} (pick another face in the list above to keep both)"
            note += f". {EDIT_NOTE}"
        mask = Image.fromarray(layer, mode="L")
        return photo, editor(photo, mask), summary(photo, replaced), note, slider

    @user_errors
    def update_choice(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto, str]:
        """Strength, prompt or likeness moved: they belong to the chosen face (when it gets a person)."""
        photo = self._photo(fields)
        face = face_index(photo, fields.get("face"))
        if face in photo.choices:
            photo.choices[face] = self._choice(fields, photo.choices[face].person)
        return photo, summary(photo)

    @user_errors
    def photos_changed(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto | None, Any, Any]:
        """Photos of the person were uploaded or cleared: faces whose person has no photos of its own start
        from the new default likeness (the faces summary says so), and the slider shows the chosen face's."""
        uploaded = bool(guards.uploaded_photos(fields.get("references")))
        photo = fields.get("photo")
        if photo is None or not photo.faces:
            person = self._person(fields.get("person"))
            return photo, likeness_slider(None if person == KEEP else self._who(person), uploaded), gr.skip()
        self.likeness_from_uploads(photo, uploaded)
        choice = photo.choices.get(face_index(photo, fields.get("face")))
        if choice is None:
            return photo, likeness_slider(None, uploaded), summary(photo)
        return photo, likeness_slider(self._who(choice.person), uploaded, choice.likeness), summary(photo)

    def likeness_from_uploads(self, photo: TargetPhoto, uploaded: bool) -> None:
        """The uploaded photos steer every face whose person has none of its own: those faces' likeness
        starts again from the default with (or, once the upload is emptied, without) them."""
        for index, choice in photo.choices.items():
            who = self._who(choice.person)
            if not who.photos:
                photo.choices[index] = replace(choice, likeness=default_likeness(who, uploaded))

    @user_errors
    def same_for_everyone(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto, Any, str, str]:
        """Every face gets the picked person and strength; the mask covers them all."""
        photo = self._photo(fields)
        person = self._person(fields.get("person"))
        if person == KEEP:
            raise gr.Error("Pick a person (or 'No person') first, then give it to every face.")
        if not photo.faces:
            raise gr.Error(NO_FACE_NOTE)
        choice = self._choice(fields, person)
        photo.choices = {index: replace(choice) for index in range(len(photo.faces))}
        painted = editor_mask(fields.get("editor"))
        layer = np.asarray(self.masks_of(photo, mask_settings(fields)))
        if painted is not None:
            layer = np.maximum(layer, np.asarray(painted))
        mask = Image.fromarray(layer, mode="L")
        note = f"All {len(photo.faces)} faces → {person or NEW_FACE}. {EDIT_NOTE}"
        return photo, editor(photo, mask), summary(photo), note

    # --- the request ----------------------------------------------------------------------------
    @staticmethod
    def _settings(fields: Mapping[str, Any], uploaded: tuple[str, ...]) -> SwapSettings:
        """Every face's defaults from the widgets; the person, strength and prompt come with each face."""
        return SwapSettings(
            negative_prompt=clean_text(fields.get("negative"), "negative prompt"),
            padding=guards.number(fields.get("padding", PADDING.default), "padding"),
            steps=int(guards.number(fields.get("steps", STEPS.default), "steps")),
            guidance=guards.number(fields.get("guidance", GUIDANCE.default), "guidance"),
            seed=seed_value(fields.get("seed")),
            lora_scale=guards.number(fields.get("lora_scale", LORA_SCALE.default), "trained person's weight"),
            color_match=bool(fields.get("color_match", True)),
            identity_photos=uploaded,
            fast=bool(fields.get("fast", False)),
            keep_expression=keep_expression_weight(fields),
            dynamic_strength=bool(fields.get("dynamic_strength", False)),
        )

    def _request(self, fields: Mapping[str, Any], photo: TargetPhoto) -> SwapRequest:
        """The request the widgets describe: every face that gets a person, the painted mask at full size."""
        painted = editor_mask(fields.get("editor"))
        if painted is None:
            raise gr.Error("Nothing is painted: press Auto mask, or paint over the face to replace.")
        if painted.size != photo.display_size:
            raise gr.Error("The mask does not match the photo; upload the photo again.")
        photo.painted = png_bytes(painted, compress_level=1)
        mask = painted if photo.scale == 1.0 else painted.resize(photo.size, Image.BILINEAR)
        settings = self._settings(fields, guards.uploaded_photos(fields.get("references")))
        if not photo.faces:
            choices = [(None, self._choice(fields, self._person(fields.get("person"))))]
        elif not photo.choices:
            raise gr.Error("Every face is set to 'Keep this face': choose a person for at least one face.")
        else:
            choices = sorted(photo.choices.items())
        request = choices_request(self.people, photo.original, choices, settings, mask)
        self.limits.check_face_steps(len(request.faces), request.settings.steps)
        return request
