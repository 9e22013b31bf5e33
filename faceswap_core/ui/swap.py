"""The Swap tab: upload a photo, give each face a person, touch up the mask, generate, compare, download.

The editor works on a display-sized copy of the photo (faces numbered on it) while the full-size
original stays on the server in the session's state, so a 24 MP phone photo is moved and decoded
once, and the result is still full size and pixel-exact outside the mask. The handlers live on
:class:`SwapHandlers` (plain values in and out, settings passed by field name) so tests call them
without a browser; :func:`create_swap_tab` lays out the components and wires the events.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceswap_core.captions import template_caption
from faceswap_core.engine import Engine, SwapResult
from faceswap_core.errors import FaceswapError, SettingsError
from faceswap_core.faces.detect import Face, detect_faces
from faceswap_core.faces.masks import face_mask, mask_scale
from faceswap_core.identity_adapter import default_identity_scale
from faceswap_core.images import check_header, load_image, png_bytes
from faceswap_core.people import People, Person, check_person_name
from faceswap_core.photo_store import PhotoStore
from faceswap_core.requests import FaceRequest, SwapRequest
from faceswap_core.settings import (
    CLASS_WORDS,
    DEFAULT_CLASS_WORD,
    EDITOR_MAX_SIDE,
    GUIDANCE,
    IDENTITY_SCALE,
    KEEP_EXPRESSION,
    LORA_SCALE,
    MASK_FEATHER_FRACTION,
    MASK_FEATHER_PX,
    MASK_GROW_FRACTION,
    MASK_GROW_PX,
    MASK_OCCLUSION,
    MAX_IDENTITY_PHOTOS,
    MAX_REFERENCE_PHOTOS,
    MAX_SEED,
    MAX_TRAIN_PHOTOS,
    PADDING,
    SEARCH_STRENGTHS,
    STEPS,
    STRENGTH,
    MaskSettings,
    PublicLimits,
    Range,
    SwapSettings,
)
from faceswap_core.sweep import sweep
from faceswap_core.ui import guards, newcomer, words
from faceswap_core.ui.common import (
    MASK_BRUSH,
    ResultFiles,
    cancellable,
    current_cancel,
    editor_image,
    editor_mask,
    editor_value,
    gpu_queue,
    on_gpu,
    range_slider,
    user_errors,
)
from faceswap_core.ui.newcomer import FIRST_STEPS, PERSON_SECTION
from faceswap_core.ui.progress import step_progress, stopped, wire_long_request, with_progress_line

KEEP = "__keep__"  # the person picker's value for "leave this face as it is"
NO_LORA = ""  # the person picker's value for "repaint with the base model only"
NO_PERSON = "A new face (no one in particular)"  # its label: the base model, said in the user's words
NEW_FACE = "a new face"  # the same in a sentence
BASE_MODEL = Person(NO_LORA)  # "no person": no LoRA, no photos of its own (the uploaded ones may still steer it)
RANDOM_SEED = -1
SEED = Range(RANDOM_SEED, MAX_SEED, RANDOM_SEED, 1)  # -1: a new random seed each time
CANDIDATE_SIZE = 256
EDITOR_HEIGHT = 420  # px: with the bar above it, photo and Generate share one 1366x768 screen
ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLE_PHOTOS = ("astronaut.jpg",)
NO_PHOTOS_INFO = "No photos: add some above"  # the likeness slider without photos to take a likeness from
NO_FACE_NOTE = (
    "No face found: paint over the area to replace with the brush, then press Generate (a face more than "
    "about half hidden, by a hand for instance, is not found)."
)
# On a phone the result shows a screen above the Generate button: bring it into view (no move when it is in view).
SHOW_RESULT = "() => document.querySelector('#views')?.scrollIntoView({block: 'nearest', behavior: 'smooth'})"
RESULT_NOTE = "Drag the handle to compare before and after. To change the mask, open **Photo and mask**."
EDIT_NOTE = "The blue paint is exactly what gets replaced: touch it up with the brush and eraser."


@dataclass
class FaceChoice:
    """What one face becomes: a person (a name from :class:`People`, or "" for the base model), a strength,
    a prompt, and the likeness: the weight of the person's photos (None: the person's default, 0: off)."""

    person: str = NO_LORA
    strength: float = STRENGTH.default
    prompt: str = ""
    likeness: float | None = None


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


def person_choices(engine: Engine, *, with_keep: bool = True) -> list[tuple[str, str]]:
    """The picker's entries: keep, base model only, then every person found now, labelled with what it has
    (photos, a LoRA or both); a trained person's checkpoints follow it."""
    from faceswap_core.training.ranking import recommended_in

    keep = [("Keep this face (no change)", KEEP)] if with_keep else []
    recommended = recommended_in(engine.loras.folder)
    people = [
        (f"{person.label} ★ recommended" if person.name in recommended else person.label, person.name)
        for person in People(engine.loras).list()
    ]
    return [*keep, (NO_PERSON, NO_LORA), *people]


def refresh_lora_picker(engine: Engine, current: str | None = NO_LORA, select: str | None = None) -> dict[str, Any]:
    """Re-read the people folder (new people show up without a restart); keep the choice if it still exists."""
    choices = person_choices(engine)
    values = {value for _, value in choices}
    wanted = select if select in values else current if current in values else NO_LORA
    return gr.Dropdown(choices=choices, value=wanted)


def _seed(value: Any) -> int | None:
    """The seed box: -1 (or empty) means a new random seed each time."""
    if value is None or value == "":
        return None
    seed = int(guards.number(value, "seed", SEED, integer=True))
    return None if seed < 0 else seed


def _likeness(value: Any) -> float | None:
    """The likeness slider (or the API's identity_scale): None is the person's default."""
    if value is None or value == "":
        return None
    return guards.number(value, "likeness", IDENTITY_SCALE)


def _text(value: Any, name: str) -> str:
    return guards.text(value, name).strip()


def default_likeness(person: Person, uploaded: bool) -> float:
    """Where the likeness slider starts: the person's own photos, else the uploaded ones (weaker beside a
    LoRA, which carries most of the likeness), else 0: there is nothing to take a likeness from."""
    if person.photos:
        return person.likeness
    if uploaded:
        return default_identity_scale(person.lora is not None)
    return 0.0


def likeness_slider(person: Person | None, uploaded: bool, value: float | None = None) -> Any:
    """The likeness slider for ``person``: usable only when there are photos to take a likeness from."""
    if person is None:  # the face is kept as it is
        return gr.Slider(interactive=False, info="This face is kept")
    start = default_likeness(person, uploaded) if value is None else value
    if person.photos:
        count = len(person.photos[:MAX_IDENTITY_PHOTOS])
        info = f"{count} photo{'s' * (count != 1)} of {person.name}; 0 = off"
    elif uploaded:
        info = "The photos above; 0 = off"
    else:
        return gr.Slider(value=0.0, interactive=False, info=NO_PHOTOS_INFO)
    return gr.Slider(value=start, interactive=True, info=info)


def uploaded_photos(value: Any) -> tuple[str, ...]:
    """The Swap tab's photos of the person (public endpoint): a list of at most MAX_IDENTITY_PHOTOS image files,
    each refused from its header before anything decodes it."""
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SettingsError("photos of the person must be a list of image files")
    if len(value) > MAX_IDENTITY_PHOTOS:
        raise SettingsError(f"{len(value)} photos of the person were given; at most {MAX_IDENTITY_PHOTOS} are used")
    for path in value:
        check_header(path, name=Path(path).name)
    return tuple(value)


def _display_copy(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at the editor's size (the comparison's size)."""
    return image if image.size == size else image.resize(size)


def numbered(image: Image.Image, faces: list[Face]) -> Image.Image:
    """The photo with each face's number in a badge above its top-left corner, sized to the face."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for number, face in enumerate(faces, start=1):
        x0, y0, _, _ = face.box
        size = int(min(max(face.width * 0.28, 14), 64))
        font = ImageFont.load_default(size=size)
        left, top = max(0, x0 - size * 0.3), max(0, y0 - size * 1.3)
        box = (left, top, left + size * (0.9 + 0.55 * (number >= 10)), top + size * 1.2)
        draw.rounded_rectangle(box, radius=size // 4, fill=(255, 140, 0), outline=(255, 255, 255), width=2)
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), str(number), fill="white", font=font, anchor="mm")
    return out


class SwapHandlers:
    """What the Swap tab's controls do, in terms of the engine and the face toolkit."""

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

    @user_errors
    def load_from_editor(self, value: dict[str, Any] | None, person: str | None, strength: float, prompt: str) -> tuple:
        """The example photo (set into the editor by gr.Examples): the same as an upload."""
        image = editor_image(value)
        if image is None:
            raise gr.Error("That file could not be opened as a photo; upload a JPEG, PNG or WebP image.")
        return self._show_photo(image, person, strength, prompt)

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
            strength = guards.number(strength, "strength")
            photo.choices[0] = FaceChoice(self._person(person), strength, _text(prompt, "prompt"), _likeness(likeness))
            count = "1 face found" if len(faces) == 1 else f"{len(faces)} faces found, numbered on the photo"
            note = f"{count}; face 1 is masked. {EDIT_NOTE}"
        else:
            note = NO_FACE_NOTE
        mask = self._auto_mask(photo, MaskSettings()) if faces else None
        return photo, self._editor(photo, mask), self._face_picker(photo, 0), self._summary(photo), note

    def _editor(self, photo: TargetPhoto, mask: Image.Image | None) -> dict[str, Any]:
        value = editor_value(Image.new("RGB", (1, 1)), mask)
        value["background"] = str(photo.display)
        return value

    @staticmethod
    def _face_picker(photo: TargetPhoto, index: int) -> Any:
        if not photo.faces:
            return gr.Dropdown(choices=[("No face found", 0)], value=0, interactive=False)
        labels = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(photo.faces))]
        return gr.Dropdown(choices=labels, value=index, interactive=len(photo.faces) > 1)

    def _summary(self, photo: TargetPhoto) -> str:
        if len(photo.faces) < 2:
            return ""
        parts = []
        for index in range(len(photo.faces)):
            choice = photo.choices.get(index)
            if choice is None:
                parts.append(f"{index + 1}: kept")
            else:
                likeness = "" if not choice.likeness else f", likeness {choice.likeness:g}"
                parts.append(f"{index + 1}: **{choice.person or NEW_FACE}** ({choice.strength:g}{likeness})")
        return "Faces → " + " · ".join(parts)

    def _person(self, person: str | None) -> str:
        """A person from the picker: a name the people folder lists now, never a path (public endpoint)."""
        name = guards.text(person, "person", max_chars=300).strip()
        if name in (NO_LORA, KEEP):
            return name
        return self.people.get(name).name

    def _who(self, person: str | None) -> Person:
        """The person behind a checked picker value ("" is the base model: no LoRA, no photos of its own)."""
        name = self._person(person)
        if name == KEEP:
            raise SettingsError("'Keep this face' repaints nothing: pick a person (or 'No person') to replace a face")
        return BASE_MODEL if name == NO_LORA else self.people.get(name)

    def _choice(self, fields: Mapping[str, Any], person: str) -> FaceChoice:
        """The face's choice from the controls: ``person`` (checked) with the strength, prompt and likeness."""
        strength, prompt = self._strength_prompt(fields)
        return FaceChoice(person, strength, prompt, _likeness(fields.get("likeness")))

    # --- faces and masks ------------------------------------------------------------------------
    def _auto_mask(self, photo: TargetPhoto, sizes: MaskSettings, only: int | None = None) -> Image.Image:
        """The union of the automatic masks of the faces that get a person (or of face ``only``), display size."""
        chosen = [only] if only is not None else sorted(photo.choices)
        union = np.zeros(photo.display_size[::-1], dtype=np.uint8)
        shown = photo.original.resize(photo.display_size) if sizes.occlusion and photo.scale != 1.0 else photo.original
        for index in chosen:
            face = photo.faces[index].scaled(photo.scale)
            grow = None if sizes.grow is None else sizes.grow * photo.scale
            feather = None if sizes.feather is None else sizes.feather * photo.scale
            image = shown if sizes.occlusion else None  # hands and objects in front of the face are cut out
            mask = face_mask(photo.display_size, face, grow=grow, feather=feather, image=image)
            np.maximum(union, np.asarray(mask), out=union)
        return Image.fromarray(union, mode="L")

    @staticmethod
    def _mask_sizes(fields: Mapping[str, Any]) -> MaskSettings:
        occlusion = fields.get("occlusion", MASK_OCCLUSION)
        if fields.get("size_from_face", True):
            sizes = MaskSettings(occlusion=occlusion)
            sizes.validate()
            return sizes
        grow, feather = guards.number(fields["grow"], "grow"), guards.number(fields["feather"], "feather")
        sizes = MaskSettings(grow=grow, feather=feather, occlusion=occlusion)
        sizes.validate()
        return sizes

    @staticmethod
    def mask_sizes(photo: TargetPhoto | None) -> tuple[Any, Any]:
        """Grow and feather as the automatic mask sized them for face 1 (photo pixels), for the sliders to show."""
        if not isinstance(photo, TargetPhoto) or not photo.faces:
            return gr.skip(), gr.skip()
        width = mask_scale(photo.faces[0])
        grow = min(max(round(MASK_GROW_FRACTION * width), MASK_GROW_PX.minimum), MASK_GROW_PX.maximum)
        return grow, min(round(MASK_FEATHER_FRACTION * width), MASK_FEATHER_PX.maximum)

    @user_errors
    def auto_mask(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Repaint the mask layer: the automatic masks of every face that gets a person (touch-ups are reset)."""
        photo = self._photo(fields)
        if not photo.faces:
            raise gr.Error(NO_FACE_NOTE)
        if not photo.choices:
            raise gr.Error("Every face is set to 'Keep this face': choose a person for at least one face first.")
        mask = self._auto_mask(photo, self._mask_sizes(fields))
        return self._editor(
            photo, mask
        ), f"Masked faces {', '.join(str(i + 1) for i in sorted(photo.choices))}. {EDIT_NOTE}"

    @user_errors
    def choose_face(self, photo: TargetPhoto | None, index: Any, uploaded: Any = None) -> tuple[Any, Any, Any, Any]:
        """The face picker moved: show that face's person, strength, prompt and likeness (a new face is 'keep')."""
        if photo is None or not photo.faces:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        face = self._face_index(photo, index)
        choice = photo.choices.get(face)
        if choice is None:
            picker = gr.Dropdown(choices=person_choices(self.engine), value=KEEP, label=f"Person for face {face + 1}")
            return picker, gr.skip(), gr.skip(), likeness_slider(None, False)
        picker = gr.Dropdown(
            choices=person_choices(self.engine), value=choice.person, label=f"Person for face {face + 1}"
        )
        slider = likeness_slider(self._who(choice.person), bool(uploaded_photos(uploaded)), choice.likeness)
        return picker, choice.strength, choice.prompt, slider

    @staticmethod
    def _face_index(photo: TargetPhoto, index: Any) -> int:
        face = int(guards.number(index if index is not None else 0, "face"))
        if not 0 <= face < max(1, len(photo.faces)):
            raise SettingsError(f"there is no face {face + 1}; {len(photo.faces)} face(s) were found")
        return face

    @user_errors
    def assign(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto, Any, str, str, Any]:
        """The chosen face gets the picked person (its mask is added; the likeness starts at the person's
        default), or is kept (its mask is removed)."""
        person = self._person(fields.get("person"))
        uploaded = bool(uploaded_photos(fields.get("references")))
        slider = likeness_slider(None if person == KEEP else self._who(person), uploaded)
        if fields.get("photo") is None and editor_image(fields.get("editor")) is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), slider  # picked before the photo: it gets this person
        photo = self._photo(fields)
        if not photo.faces:
            return photo, gr.skip(), "", gr.skip(), slider
        face = self._face_index(photo, fields.get("face"))
        painted = editor_mask(fields.get("editor"))
        layer = np.zeros(photo.display_size[::-1], np.uint8) if painted is None else np.asarray(painted).copy()
        own = np.asarray(self._auto_mask(photo, self._mask_sizes(fields), only=face))
        if person == KEEP:
            photo.choices.pop(face, None)
            layer[own > 0] = 0
            note = f"Face {face + 1} is kept as it is."
        else:
            likeness = default_likeness(self._who(person), uploaded)
            photo.choices[face] = replace(self._choice(fields, person), likeness=likeness)
            np.maximum(layer, own, out=layer)
            note = f"Face {face + 1} → {person or NEW_FACE}. {EDIT_NOTE}"
        mask = Image.fromarray(layer, mode="L")
        return photo, self._editor(photo, mask), self._summary(photo), note, slider

    @user_errors
    def update_choice(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto, str]:
        """Strength, prompt or likeness moved: they belong to the chosen face (when it gets a person)."""
        photo = self._photo(fields)
        face = self._face_index(photo, fields.get("face"))
        if face in photo.choices:
            photo.choices[face] = self._choice(fields, photo.choices[face].person)
        return photo, self._summary(photo)

    @user_errors
    def photos_changed(self, fields: Mapping[str, Any]) -> tuple[TargetPhoto | None, Any]:
        """Photos of the person were uploaded or cleared: faces whose person has no photos of its own start
        from the new default likeness, and the slider shows the chosen face's."""
        uploaded = bool(uploaded_photos(fields.get("references")))
        photo = fields.get("photo")
        if photo is None or not photo.faces:
            person = self._person(fields.get("person"))
            return photo, likeness_slider(None if person == KEEP else self._who(person), uploaded)
        for index, choice in photo.choices.items():
            who = self._who(choice.person)
            if not who.photos:
                photo.choices[index] = replace(choice, likeness=default_likeness(who, uploaded))
        choice = photo.choices.get(self._face_index(photo, fields.get("face")))
        if choice is None:
            return photo, likeness_slider(None, uploaded)
        return photo, likeness_slider(self._who(choice.person), uploaded, choice.likeness)

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
        layer = np.asarray(self._auto_mask(photo, self._mask_sizes(fields)))
        if painted is not None:
            layer = np.maximum(layer, np.asarray(painted))
        mask = Image.fromarray(layer, mode="L")
        note = f"All {len(photo.faces)} faces → {person or NEW_FACE}. {EDIT_NOTE}"
        return photo, self._editor(photo, mask), self._summary(photo), note

    def describe_lora(self, name: str | None) -> tuple[str, Any]:
        """What is known about the chosen person, and the prompt it defaults to (shown as the placeholder)."""
        if not name or name == KEEP:
            return "", gr.Textbox(placeholder=SwapSettings().prompt)
        try:
            person = self.people.get(self._person(name))
        except FaceswapError as err:
            return f"⚠️ {guards.public_message(str(err))}", gr.skip()
        meta = person.lora.metadata if person.lora is not None else {}
        facts = []
        if person.class_word:
            facts.append(f"a {person.class_word}")
        if person.photos:
            facts.append(f"{len(person.photos)} photo{'s' * (len(person.photos) != 1)}")
        step = meta.get("checkpoint_step") or meta.get("steps_done")
        if step:
            facts.append(f"LoRA at step {step}")
        elif person.lora is not None:
            facts.append("a LoRA")
        else:
            facts.append("no training: the likeness comes from the photos")
        base = meta.get("base_model")
        warning = ""
        if base and base != self.engine.base_model:
            warning = " ⚠️ trained on another base model than the one loaded"
        text = f"**{person.name}**" + (f": {', '.join(facts)}" if facts else "") + warning
        return text, gr.Textbox(placeholder=self.default_prompt(person.name))

    # --- adding a person -----------------------------------------------------------------------
    @user_errors
    def add_person(self, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """The uploaded photos of the person saved as a new person (aligned in seconds, no training), who then
        gets the chosen face.

        Public endpoint: the name stays inside the people folder, at most MAX_TRAIN_PHOTOS files, each
        refused from its header before anything decodes it. Returns the picker, the photo state, editor,
        face summary, mask note, likeness slider, a note on what was added and skipped, and the photo
        upload and name box emptied (the photos are the person's now).
        """
        name = check_person_name(guards.text(fields.get("new_name"), "name", max_chars=300))
        self.engine.loras.check_new_name(name)
        files = fields.get("references") or []
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not all(isinstance(item, str) and item for item in files):
            raise SettingsError("the photos of the new person must be a list of image files")
        if not files:
            raise gr.Error("Choose 1-5 photos of the person's face, then press Add.")
        if len(files) > MAX_TRAIN_PHOTOS:
            raise SettingsError(f"{len(files)} photos were given; a person takes at most {MAX_TRAIN_PHOTOS}")
        for path in files:
            check_header(path, name=Path(path).name)
        class_word = fields.get("new_class_word") or DEFAULT_CLASS_WORD  # API callers may leave it out
        if class_word not in CLASS_WORDS:
            raise SettingsError(f"the new person must be one of: {', '.join(CLASS_WORDS)}")
        person, report = self.people.add(name, files, class_word=class_word)
        note = f"Added **{person.label}**: ready to use, no training needed."
        if report.skipped:
            skipped = "; ".join(guards.public_message(reason) for _, reason in report.skipped)
            note += f" Skipped: {skipped}"
        picker = refresh_lora_picker(self.engine, select=person.name)
        emptied = (gr.File(value=None), "")
        photo = fields.get("photo")
        if photo is None or not photo.faces:
            slider = likeness_slider(person, False)
            return picker, gr.skip(), gr.skip(), gr.skip(), gr.skip(), slider, note, *emptied
        photo, editor, summary, mask_note, slider = self.assign({**fields, "person": person.name, "references": None})
        return picker, photo, editor, summary, mask_note, slider, note, *emptied

    # --- generating -----------------------------------------------------------------------------
    def _photo(self, fields: Mapping[str, Any]) -> TargetPhoto:
        """The session's photo; an API caller without a session sends the editor's background instead."""
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

    def default_prompt(self, person: str) -> str:
        """The caption template of the person's class word (a man is "a photo of a man face"), else the default."""
        if person in (NO_LORA, KEEP):
            return SwapSettings().prompt
        try:
            class_word = self.people.get(person).class_word
        except FaceswapError:
            class_word = None
        return template_caption(class_word) if class_word else SwapSettings().prompt

    def _face(self, index: int | None, choice: FaceChoice) -> FaceRequest:
        """One face of the request: its person (checked now, by name only), strength, prompt and likeness."""
        self._who(choice.person)
        prompt = choice.prompt or self.default_prompt(choice.person)
        return FaceRequest(index, choice.person, choice.strength, prompt, choice.likeness)

    @staticmethod
    def _settings(fields: Mapping[str, Any], uploaded: tuple[str, ...]) -> SwapSettings:
        """Every face's defaults from the widgets; the person, strength and prompt come with each face."""
        return SwapSettings(
            negative_prompt=_text(fields.get("negative"), "negative prompt"),
            padding=guards.number(fields.get("padding", PADDING.default), "padding"),
            steps=int(guards.number(fields.get("steps", STEPS.default), "steps")),
            guidance=guards.number(fields.get("guidance", GUIDANCE.default), "guidance"),
            seed=_seed(fields.get("seed")),
            lora_scale=guards.number(fields.get("lora_scale", LORA_SCALE.default), "trained person's weight"),
            color_match=bool(fields.get("color_match", True)),
            identity_photos=uploaded,
            fast=bool(fields.get("fast", False)),
            keep_expression=_keep_expression(fields),
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
        settings = self._settings(fields, uploaded_photos(fields.get("references")))
        if not photo.faces:
            faces = (self._face(None, self._choice(fields, self._person(fields.get("person")))),)
        elif not photo.choices:
            raise gr.Error("Every face is set to 'Keep this face': choose a person for at least one face.")
        else:
            faces = tuple(self._face(index, choice) for index, choice in sorted(photo.choices.items()))
        request = SwapRequest(photo.original, faces=faces, settings=settings, mask=mask).validate()
        self.limits.check_face_steps(len(request.faces), request.settings.steps)
        return request

    @staticmethod
    def _strength_prompt(fields: Mapping[str, Any]) -> tuple[float, str]:
        return guards.number(fields.get("strength"), "strength"), _text(fields.get("prompt"), "prompt")

    @user_errors
    def generate(self, fields: Mapping[str, Any], progress: gr.Progress | None = None) -> tuple[Any, ...]:
        """Repaint every face that gets a person, in one request with one progress bar."""
        photo = self._photo(fields)
        request = self._request(fields, photo)
        report = step_progress(progress, "Generating", len(request.faces), "faces")
        result = self.engine.run(request, progress=report, cancel=current_cancel())
        slider, button, record = self._show(photo, result)
        return slider, button, record, gr.Gallery(value=None, visible=False), [], gr.Tabs(selected="result")

    def _show(self, photo: TargetPhoto, result: SwapResult) -> tuple[Any, Any, dict[str, Any]]:
        """The comparison at display size as JPEG files (fast to encode and send: Gradio would encode images
        as WebP, seconds at 2048 px), the download at full size with its parameters."""
        record = guards.public_record(result.record)
        path = self.files.save(result, record)
        if photo.before is None or not photo.before.is_file():  # the same for every result of this photo
            photo.before = self.files.save_display(_display_copy(photo.original, photo.display_size))
        after = self.files.save_display(_display_copy(result.image, photo.display_size))
        before = str(photo.before)
        photo.last = (before, str(after), str(path), record)
        width, height = result.image.size
        button = gr.DownloadButton(f"Download full-size PNG ({width}×{height})", value=str(path), visible=True)
        return (before, str(after)), button, record

    @user_errors
    def try_strengths(self, fields: Mapping[str, Any], progress: gr.Progress | None = None) -> tuple[Any, ...]:
        """Several strengths on the chosen face with one seed, ranked by likeness to photos of the person."""
        strengths = parse_strengths(fields.get("strengths") or "", _keep_expression(fields))  # before any work
        photo = self._photo(fields)
        request = self._request(fields, photo)
        face = self._face_index(photo, fields.get("face")) if photo.faces else None
        chosen = next((f for f in request.faces if f.face == face), request.faces[0])
        self.limits.check_face_steps(len(strengths), request.settings.steps)
        photos, source = self.reference_photos(fields.get("references"), chosen.person)
        results = sweep(
            self.engine,
            request,
            face=chosen.face,
            strengths=strengths,
            references=photos or None,
            progress=step_progress(progress, "Trying strengths", len(strengths), "strengths"),
            cancel=current_cancel(),
        )
        candidates, gallery = [], []
        for result in results:
            record = guards.public_record(result.record)
            path = self.files.save(result, record, stem="candidate")
            candidates.append({"path": str(path), "record": record})
            gallery.append((face_crop(result), candidate_caption(result)))
        if photos:  # one line: a longer label covers the top of the thumbnails
            label = f"{len(results)} candidates, most alike first (to the {source})"
        else:
            label = f"{len(results)} candidates, not ranked: add photos of the person to rank them"
        slider, button, record = self._show(photo, results[0])
        shown = gr.Gallery(value=gallery, visible=True, label=label)
        return slider, button, record, shown, candidates, gr.Tabs(selected="result")

    def reference_photos(self, uploaded: list[str] | None, person: str | None) -> tuple[list[str], str]:
        """Photos to rank candidates by: the person's own (those that steer it), else the uploaded ones."""
        who = self._who(person)
        if who.photos:
            return [str(p) for p in who.photos[:MAX_REFERENCE_PHOTOS]], f"photos of {who.name}"
        return list(uploaded_photos(uploaded)), "uploaded photos"

    @user_errors
    def show_candidate(
        self, photo: TargetPhoto | None, candidates: list[dict[str, Any]], event: gr.SelectData
    ) -> tuple:
        """Clicking a candidate makes it the result (comparison, download, parameters)."""
        if photo is None or not isinstance(event.index, int) or not 0 <= event.index < len(candidates):
            return gr.skip(), gr.skip(), gr.skip()
        chosen = candidates[event.index]
        result = SwapResult(load_image(chosen["path"], name="candidate"), chosen["record"])
        slider, _, record = self._show(photo, result)
        label = f"Download full-size PNG ({result.image.width}×{result.image.height})"
        return slider, gr.DownloadButton(label, value=chosen["path"], visible=True), record

    # --- the API --------------------------------------------------------------------------------
    @user_errors
    def api_swap(
        self,
        image: str | None,
        mask: str | None,
        lora: str | None,
        lora_scale: float,
        prompt: str | None,
        strength: float,
        padding: float,
        steps: float,
        guidance: float,
        seed: float | None,
        face: float | None = None,
        faces: str | None = None,
        fast: bool = False,
        identity_photos: list[str] | None = None,
        identity_scale: float | None = None,
        keep_expression: float | None = 0.0,
        dynamic_strength: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict[str, Any]]:
        """For scripts: a target image file, an optional mask file (white = replace), one face or a JSON list of
        ``{"face", "lora", "prompt", "strength", "likeness"}`` (each missing key takes the call's value); a PNG out.

        ``lora`` names a person (photos, a LoRA or both); ``identity_photos`` are photos of the person for faces
        whose person has none of its own, and ``identity_scale`` their likeness (None: the person's default).
        ``keep_expression`` is the ControlNet's weight on the target's landmarks (0: off).
        """
        if not image:
            raise gr.Error("no target image was sent")
        check_header(str(image), name="target image")  # refused from its header, before anything decodes it
        if mask:
            check_header(str(mask), name="mask")
        uploaded = uploaded_photos(identity_photos)
        fields = {"lora_scale": lora_scale, "padding": padding, "steps": steps, "guidance": guidance, "seed": seed}
        fields.update(fast=fast, keep_expression=keep_expression, dynamic_strength=dynamic_strength)
        fields["negative"] = SwapSettings().negative_prompt
        base = FaceChoice(
            self._person(lora or NO_LORA),
            guards.number(strength, "strength"),
            _text(prompt, "prompt"),
            _likeness(identity_scale),
        )
        if faces and faces.strip():
            parsed = parse_faces(guards.text(faces, "faces", max_chars=20_000), base)
            chosen = [(i, replace(c, person=self._person(c.person))) for i, c in parsed]
        else:
            index = None if face is None or face == "" else int(guards.number(face, "face"))
            chosen = [(index if index is not None or mask else 0, base)]
        faces = tuple(self._face(index, choice) for index, choice in chosen)
        request = SwapRequest(image, faces=faces, settings=self._settings(fields, uploaded), mask=mask or None)
        return self._run_api(request.validate(), progress)

    @user_errors
    def api_request(
        self,
        request: str | None,
        image: str | None,
        mask: str | None = None,
        identity_photos: list[str] | None = None,
        reference_face: str | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict[str, Any]]:
        """For scripts: a swap written down as JSON (:class:`SwapRequest`), its files uploaded beside it.

        Every file comes from the upload, never from the JSON, so a request cannot name a file on the server.
        """
        if not image:
            raise gr.Error("no target image was sent")
        for path, name in ((image, "target image"), (mask, "mask"), (reference_face, "reference photo")):
            if path:
                check_header(str(path), name=name)  # refused from its header, before anything decodes it
        files = {
            "image": str(image),
            "mask": str(mask) if mask else None,
            "reference_face": str(reference_face) if reference_face else None,
            "identity_photos": list(uploaded_photos(identity_photos)),
        }
        return self._run_api(SwapRequest.from_json(request or "{}", files=files), progress)

    def _run_api(self, request: SwapRequest, progress: gr.Progress | None) -> tuple[str, dict[str, Any]]:
        self.limits.check_face_steps(max(1, len(request.faces)), request.settings.steps)
        report = step_progress(progress, "Generating", len(request.faces), "faces")
        result = self.engine.run(request, progress=report, cancel=current_cancel())
        record = guards.public_record(result.record)
        return str(self.files.save(result, record)), record


def _expression_strengths(on: bool) -> tuple[float, str]:
    """Keep expression switched: the recommended strength and the strengths to try move with it."""
    from faceswap_core.conditioning.controlnet import strengths_for

    recommended, candidates = strengths_for(1.0 if on else 0.0)
    return recommended, ", ".join(f"{value:g}" for value in candidates)


def parse_faces(text: str, base: FaceChoice) -> list[tuple[int, FaceChoice]]:
    """The API's per-face list: ``[{"face": 0, "lora": "alice", "prompt": "...", "strength": 0.5}, ...]``;
    ``"lora"`` names a person, and ``"likeness"`` weighs its photos (0 = off)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise SettingsError(f"faces must be a JSON list of objects ({err.msg})") from None
    except (RecursionError, ValueError):  # 10,000 nested lists; a 5,000-digit number
        raise SettingsError("faces must be a flat JSON list of objects with plain numbers") from None
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise SettingsError('faces must be a JSON list like [{"face": 0, "lora": "alice"}]')
    chosen: list[tuple[int, FaceChoice]] = []
    for item in items:
        unknown = set(item) - {"face", "lora", "prompt", "strength", "likeness"}
        if unknown:
            raise SettingsError(f"faces: unknown key(s) {', '.join(sorted(unknown))}")
        index = item.get("face")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise SettingsError(f"faces: each entry needs a face index (0, 1, ...), got {index!r}")
        if any(index == known for known, _ in chosen):
            raise SettingsError(f"faces: face {index} is listed more than once")
        choice = FaceChoice(
            guards.text(item.get("lora", base.person), "lora", max_chars=300).strip(),
            guards.number(item.get("strength", base.strength), "strength"),
            _text(item.get("prompt", base.prompt), "prompt"),
            _likeness(item.get("likeness", base.likeness)),
        )
        chosen.append((index, choice))
    return chosen


def _keep_expression(fields: Mapping[str, Any]) -> float:
    """The ControlNet's weight: the slider's when the Keep expression switch is on (the API sends the weight alone)."""
    if not fields.get("keep_expression_on", True):
        return 0.0
    weight = guards.number(fields.get("keep_expression") or 0.0, "keep expression weight")
    KEEP_EXPRESSION.check("keep expression weight", weight)
    return weight


def parse_strengths(text: str, keep_expression: float = 0.0) -> list[float]:
    """``"0.3, 0.4 0.5"`` -> [0.3, 0.4, 0.5]; each must be a valid strength, and at most MAX_STRENGTH_CANDIDATES.

    Empty: the default candidates, higher ones when Keep expression is on.
    """
    from faceswap_core.conditioning.controlnet import strengths_for

    parts = [p for p in guards.text(text, "strengths").replace(",", " ").split() if p]
    if not parts:
        return list(strengths_for(keep_expression)[1])
    guards.strength_count(len(parts))  # before any work: each one is a full swap
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise SettingsError(f"strengths: {part!r} is not a number; write them like 0.3, 0.4, 0.5") from None
        STRENGTH.check("strength", guards.number(value, "strength"))
        values.append(value)
    return values


def face_crop(result: SwapResult) -> Image.Image:
    """The candidate around the face it repainted (not a centre crop that may cut the face off)."""
    x0, y0, x1, y1 = result.record["faces"][0]["crop_box"]
    crop = result.image.crop((max(0, x0), max(0, y0), min(result.image.width, x1), min(result.image.height, y1)))
    crop.thumbnail((CANDIDATE_SIZE, CANDIDATE_SIZE))
    return crop


def candidate_caption(result: SwapResult) -> str:
    strength = result.record["faces"][0]["strength"]
    if result.identity_distance is None:
        return f"strength {strength:.2f}" + (" · no face found" if "identity_distance" in result.record else "")
    return f"strength {strength:.2f} · {words.likeness(result.identity_distance)}"


def by_name(fn: Callable[..., Any], components: Mapping[str, Any], *, progress: bool = False) -> Callable[..., Any]:
    """An event function that takes Gradio's {component: value} dict and calls ``fn`` with {field: value}.

    Inputs given as a set of components arrive as one dict, so adding a setting is one new entry in
    ``components`` instead of a new positional argument in five places. (No ``functools.wraps``:
    Gradio would read ``fn``'s signature through it and miss the ``gr.Progress`` below.)
    """
    names = {component: name for name, component in components.items()}

    def rename(data: dict[Any, Any]) -> dict[str, Any]:
        return {names[component]: value for component, value in data.items() if component in names}

    def call(data: dict[Any, Any]) -> Any:
        return fn(rename(data))

    def call_with_progress(data: dict[Any, Any], progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:
        return fn(rename(data), progress=progress)

    chosen = call_with_progress if progress else call
    chosen.__name__ = getattr(fn, "__name__", "handler")
    chosen.__doc__ = fn.__doc__
    return chosen


def create_swap_tab(engine: Engine, handlers: SwapHandlers | None = None) -> gr.Dropdown:
    """Lay out the Swap tab inside the current Blocks and wire its events.

    Returns the person picker, which the Train tab refreshes when a new LoRA is saved.
    """
    handlers = handlers or SwapHandlers(engine)
    defaults = SwapSettings()
    photo = gr.State(None)
    candidate_state = gr.State([])
    with gr.Row(equal_height=False, elem_id="swap-layout"):
        with gr.Column(scale=3, min_width=320):
            with gr.Row(equal_height=True, elem_id="photo-bar"):
                upload = gr.UploadButton(
                    "📷 Upload photo",
                    file_types=["image"],
                    type="filepath",
                    variant="primary",
                    elem_id="upload",
                    min_width=140,
                )
                face = gr.Dropdown(
                    choices=[("Face 1", 0)],
                    value=0,
                    label="Face (numbered on the photo)",
                    show_label=False,  # "Face 2" says it; a label would make the whole bar two lines tall
                    elem_id="face-index",
                    interactive=False,
                    allow_custom_value=True,  # the choices follow the photo; the handlers check the index
                    min_width=140,
                )
                auto = gr.Button("Auto mask", elem_id="auto-mask", min_width=100)
                example = gr.Button(  # the example photo without scrolling to find it
                    "Example",
                    elem_id="example-photo",
                    min_width=90,
                    visible=any((ASSETS / name).is_file() for name in EXAMPLE_PHOTOS),
                )
            with gr.Tabs(selected="mask", elem_id="views") as views:
                with gr.Tab("Photo and mask", id="mask"):
                    editor = gr.ImageEditor(
                        label="The blue paint marks what gets replaced",
                        show_label=False,  # the note under it says so; a floating label sits under the zoom bar
                        type="pil",
                        image_mode="RGBA",
                        format="png",
                        sources=(),  # photos come through the Upload button: the editor fires "upload" when a
                        # handler sets its background too, which would reload the numbered copy as the photo
                        brush=MASK_BRUSH,
                        eraser=gr.Eraser(),
                        layers=False,
                        transforms=(),
                        canvas_size=(
                            32,
                            32,
                        ),  # the canvas takes the photo's size; a larger start size shifts set layers
                        height=EDITOR_HEIGHT,
                        elem_id="target",
                    )
                    guards.safe_editor(editor)  # images refused from their header before Gradio decodes them
                with gr.Tab("Result", id="result"):
                    progress_line = gr.Markdown(elem_id="progress-line")  # steps and time left while it runs
                    result = gr.ImageSlider(
                        label="Before / after: drag the handle", type="pil", height=EDITOR_HEIGHT, elem_id="result"
                    )
                    candidates = gr.Gallery(
                        visible=False,
                        columns=4,
                        height="auto",  # the captions sit under the thumbnails: a fixed height cut them off
                        allow_preview=False,
                        object_fit="contain",
                        elem_id="candidates",
                    )
            mask_note = gr.Markdown(FIRST_STEPS, elem_id="mask-note")
            examples = [[str(ASSETS / name)] for name in EXAMPLE_PHOTOS if (ASSETS / name).is_file()]
        with gr.Column(scale=2, min_width=300, elem_id="swap-controls"):
            with gr.Row(equal_height=True):
                person = gr.Dropdown(
                    choices=person_choices(engine),
                    value=NO_LORA,
                    label="Person for face 1",
                    elem_id="lora",
                    allow_custom_value=True,  # the choices grow as people are added; the people folder checks names
                    scale=4,
                )
                refresh = gr.Button("↻", size="sm", scale=0, min_width=40, elem_id="lora-refresh")
            lora_info = gr.Markdown(elem_id="lora-info")
            with gr.Accordion(PERSON_SECTION, open=False, elem_id="person-photos") as person_section:
                with gr.Row(equal_height=True):  # one row: open on a fresh install, Generate stays on screen
                    references = gr.File(
                        label=f"1-{MAX_IDENTITY_PHOTOS} photos of their face",
                        file_count="multiple",
                        file_types=["image"],
                        type="filepath",
                        elem_id="person-photo-files",
                        height=110,
                        scale=3,
                    )
                    with gr.Column(scale=2, min_width=140):
                        new_name = gr.Textbox(
                            label="Keep them as a person named",
                            show_label=False,
                            placeholder="Their name, e.g. anna",
                            max_length=64,
                            elem_id="new-person-name",
                        )
                        new_class_word = gr.Dropdown(  # their own prompt: "a photo of a man face"
                            choices=[(f"a {word}", word) for word in CLASS_WORDS],
                            value=DEFAULT_CLASS_WORD,
                            label="They are",
                            show_label=False,
                            elem_id="new-person-class",
                        )
                        add = gr.Button("Add person", size="sm", elem_id="add-person")
                add_note = gr.Markdown(elem_id="add-person-note")
            with gr.Row():  # the two controls of how much changes, side by side and always in view
                strength = range_slider(
                    STRENGTH,
                    label="Strength",
                    info="Low: the photo; high: the person",
                    elem_id="strength",
                )
                likeness = range_slider(
                    IDENTITY_SCALE,
                    value=0.0,
                    label="Likeness from photos",
                    info=NO_PHOTOS_INFO,
                    interactive=False,
                    elem_id="likeness",
                )
            with gr.Row():
                prompt = gr.Textbox(
                    value="",
                    label="Prompt",
                    placeholder=defaults.prompt,
                    lines=1,
                    info="Describe the photo, not the face",
                    elem_id="prompt",
                    scale=3,
                )
                padding = range_slider(
                    PADDING, label="Context", info="Photo around the face", elem_id="context", scale=2
                )
            with gr.Row(equal_height=True, elem_id="generate-bar"):
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=2, min_width=100)
                search = gr.Button("Try strengths", elem_id="try-strengths", scale=2, min_width=100)
                stop = gr.Button("Stop", variant="stop", visible=False, elem_id="stop", scale=4, min_width=100)
                fast = gr.Checkbox(
                    value=False,
                    label="Fast",
                    info="~4 steps",  # and no negative prompt: said in the Advanced accordion
                    elem_id="fast",
                    scale=1,
                    min_width=70,
                )
            download = gr.DownloadButton("Download full-size PNG", visible=False, elem_id="download")
            everyone = gr.Button("Same person for every face", size="sm", visible=True, elem_id="same-for-all")
            summary = gr.Markdown(elem_id="face-summary")
            with gr.Accordion("Mask size", open=False, elem_id="mask-size"):
                size_from_face = gr.Checkbox(
                    value=True, label="Size the mask from the face", elem_id="mask-size-from-face"
                )
                with gr.Row():
                    grow = range_slider(MASK_GROW_PX, label="Grow (px)", info="Then press Auto mask", elem_id="grow")
                    feather = range_slider(
                        MASK_FEATHER_PX, label="Feather (px)", info="Soft edge width", elem_id="feather"
                    )
                occlusion = gr.Checkbox(
                    value=MASK_OCCLUSION,
                    label="Leave out hands and things in front of the face",
                    info="Then press Auto mask",
                    elem_id="mask-occlusion",
                )
            with gr.Accordion("Try strengths: what to try", open=False, elem_id="strengths-panel"):
                strengths = gr.Textbox(
                    value=", ".join(f"{s:g}" for s in SEARCH_STRENGTHS),
                    label="Strengths to try",
                    info="Ranked by likeness to the person's photos (or the ones uploaded above)",
                    elem_id="strengths",
                )
            with gr.Accordion("Pose and expression", open=False, elem_id="expression-panel"):
                with gr.Row():
                    keep_expression_on = gr.Checkbox(
                        value=False,
                        label="Keep expression",
                        info="A ControlNet holds the photo's pose and expression, so strength can go high",
                        elem_id="keep-expression",
                    )
                    keep_expression = range_slider(KEEP_EXPRESSION, label="Weight", elem_id="keep-expression-weight")
                dynamic_strength = gr.Checkbox(
                    value=False,
                    label="More strength for small faces",
                    info="Adds up to +0.2 by face size (as ADetailer)",
                    elem_id="dynamic-strength",
                )
            with gr.Accordion("Advanced", open=False):
                lora_scale = range_slider(
                    LORA_SCALE, label="Trained person's weight", info="LoRA scale: 1 as trained", elem_id="lora-scale"
                )
                negative = gr.Textbox(
                    value=defaults.negative_prompt,
                    label="Negative prompt",
                    info="Not used in Fast mode",
                    lines=2,
                )
                steps = range_slider(STEPS, label="Steps", info=newcomer.STEPS_INFO, elem_id="steps")
                guidance = range_slider(GUIDANCE, label="Guidance", info=newcomer.GUIDANCE_INFO, elem_id="guidance")
                with gr.Row(equal_height=True):
                    seed = gr.Number(
                        value=RANDOM_SEED,
                        precision=0,
                        minimum=RANDOM_SEED,
                        maximum=MAX_SEED,
                        label="Seed",
                        info="-1: random",
                        elem_id="seed",
                        scale=3,
                    )
                    guards.safe_number(seed, "seed")
                    dice = gr.Button("🎲", size="sm", scale=0, min_width=40, elem_id="dice")
                color_match = gr.Checkbox(value=defaults.color_match, label="Match the colours of the surroundings")
            with gr.Accordion("Parameters of this result", open=False):
                record = gr.JSON(label="Saved in the PNG as text", elem_id="record")

    shown = [photo, editor, face, summary, mask_note]

    def after_load(photo: TargetPhoto | None) -> tuple[Any, ...]:
        """The mask sliders at the sizes used, and the photo in view (not the last photo's result)."""
        return (*handlers.mask_sizes(photo), gr.Tabs(selected="mask"))

    def with_mask_sizes(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*values, *after_load(values[0]))

    # Every event that decodes an image (the editor's, a photo) goes through the queue, at most 4 at once.
    on_faces = {"show_progress_on": [mask_note], "concurrency_id": "faces", "concurrency_limit": 4}
    quiet = {"show_progress": "hidden", "concurrency_id": "faces", "concurrency_limit": 4}  # small, frequent ones
    if examples:
        gr.Examples(
            examples,
            inputs=[editor],
            outputs=[*shown, grow, feather, views],
            fn=lambda value: with_mask_sizes(handlers.load_from_editor(value, NO_LORA, STRENGTH.default, "")),
            run_on_click=True,
            label="Example photo (NASA, public domain): click it, then Generate",
        )
    loads = [upload.upload(handlers.load_photo, [upload, person, strength, prompt, likeness], shown, **on_faces)]
    if examples:

        def load_example(*controls: Any) -> tuple[Any, ...]:
            return handlers.load_photo(examples[0][0], *controls)

        loads.append(example.click(load_example, [person, strength, prompt, likeness], shown, **on_faces))
    for loaded in loads:
        loaded.success(after_load, photo, [grow, feather, views], queue=False)
        loaded.success(lambda: gr.Button(visible=False), None, example, queue=False)  # room for the face picker
    gr.on(None, lambda: newcomer.person_section(handlers.people), None, person_section, queue=False)  # on page load

    mask_fields = {
        "photo": photo,
        "editor": editor,
        "face": face,
        "person": person,
        "strength": strength,
        "prompt": prompt,
        "likeness": likeness,
        "references": references,
        "size_from_face": size_from_face,
        "occlusion": occlusion,
        "grow": grow,
        "feather": feather,
    }
    auto.click(
        by_name(handlers.auto_mask, mask_fields),
        set(mask_fields.values()),
        [editor, mask_note],
        **on_faces,
    )
    kept_after = [*loads]  # the events whose outcome a reload brings back (see session_keep)
    kept_after.append(
        face.input(handlers.choose_face, [photo, face, references], [person, strength, prompt, likeness], queue=False)
    )
    assigned = person.input(
        by_name(handlers.assign, mask_fields),
        set(mask_fields.values()),
        [photo, editor, summary, mask_note, likeness],
        **on_faces,
    )
    for event in (references.upload, references.clear, references.delete):  # not .change: Add empties the
        event(  # upload itself, and then sets the slider for the new person
            by_name(handlers.photos_changed, mask_fields), set(mask_fields.values()), [photo, likeness], **quiet
        )
    add_fields = {**mask_fields, "new_name": new_name, "new_class_word": new_class_word}
    added = add.click(
        by_name(handlers.add_person, add_fields),
        set(add_fields.values()),
        [person, photo, editor, summary, mask_note, likeness, add_note, references, new_name],
        api_name="add_person",
        show_progress_on=[add_note],
        concurrency_id="faces",
        concurrency_limit=4,
    )
    added.success(newcomer.person_added, None, person_section, queue=False)
    kept_after += [assigned, added]
    for control in (strength, prompt, likeness):
        kept_after.append(
            control.input(
                by_name(handlers.update_choice, mask_fields), set(mask_fields.values()), [photo, summary], **quiet
            )
        )
    everyone_event = everyone.click(
        by_name(handlers.same_for_everyone, mask_fields),
        set(mask_fields.values()),
        [photo, editor, summary, mask_note],
        **on_faces,
    )
    for slider in (grow, feather):
        slider.input(lambda: False, None, size_from_face, queue=False)
    refresh.click(lambda current: refresh_lora_picker(engine, current), person, person, queue=False)
    person.change(handlers.describe_lora, person, [lora_info, prompt], queue=False)
    dice.click(lambda: random.randint(0, MAX_SEED), None, seed, queue=False)
    keep_expression_on.input(_expression_strengths, keep_expression_on, [strength, strengths], queue=False)
    fast.change(newcomer.fast_truth, fast, [steps, guidance], queue=False)

    swap_fields = {
        **mask_fields,
        "lora_scale": lora_scale,
        "negative": negative,
        "padding": padding,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "color_match": color_match,
        "fast": fast,
        "keep_expression_on": keep_expression_on,
        "keep_expression": keep_expression,
        "dynamic_strength": dynamic_strength,
        "strengths": strengths,
    }
    outputs = [result, download, record, candidates, candidate_state, views]
    gpu = gpu_queue(engine)
    long = {"views": views, "buttons": [generate, search], "stop": stop, "line": progress_line, **gpu}
    requests = [
        wire_long_request(
            button,
            on_gpu(with_progress_line(cancellable(by_name(run, swap_fields, progress=True), outputs=len(outputs)))),
            inputs=set(swap_fields.values()),
            outputs=[*outputs, progress_line],
            show_progress="hidden",  # the progress line says it, in words
            api_name=api_name,
            **long,
        )
        for button, run, api_name in (
            (generate, handlers.generate, "generate"),
            (search, handlers.try_strengths, "try_strengths"),
        )
    ]
    for request in requests:
        request.success(None, js=SHOW_RESULT)
        request.success(lambda: RESULT_NOTE, None, mask_note, queue=False)  # not "touch it up" under a result
    stop.click(lambda: stopped(2), None, [generate, search, stop, progress_line], cancels=requests, queue=False)
    chosen = candidates.select(handlers.show_candidate, [photo, candidate_state], [result, download, record], **quiet)
    from faceswap_core.ui.session_keep import keep_across_reloads  # it imports this module

    kept_after += [everyone_event, *requests, chosen]
    kept = {"person": person, "photo": photo, "editor": editor, "face": face, "summary": summary}
    kept.update(mask_note=mask_note, strength=strength, prompt=prompt, likeness=likeness, result=result)
    kept.update(download=download, record=record, views=views, example=example)
    keep_across_reloads(handlers, kept, kept_after)

    # A plain endpoint for scripts (gradio_client): files in, PNG out; no canvas involved.
    with gr.Row(visible=False):
        api_image = gr.File(type="filepath", label="target image")
        api_mask = gr.File(type="filepath", label="mask (white = replace; optional)")
        api_lora = gr.Textbox(label="person (LoRA name); empty for none")
        api_face = gr.Number(value=None, precision=0, label="face index (0 = largest); empty with a mask")
        guards.safe_number(api_face, "face index")
        api_faces = gr.Textbox(label='several faces: JSON [{"face": 0, "lora": "alice", "strength": 0.5}, ...]')
        api_fast = gr.Checkbox(value=False, label="fast: a few-step LoRA, ~4 UNet evaluations")
        api_photos = gr.File(
            file_count="multiple", type="filepath", label="photos of the person (optional; for a person without any)"
        )
        api_likeness = gr.Number(value=None, label="likeness of the photos (empty: the person's default; 0: off)")
        guards.safe_number(api_likeness, "likeness")
        api_keep = gr.Number(value=0.0, label="keep expression: ControlNet weight on the target's landmarks (0: off)")
        guards.safe_number(api_keep, "keep expression weight")
        api_dynamic = gr.Checkbox(value=False, label="dynamic strength: more for small faces")
        api_out = gr.Image(type="filepath", format="png", label="result")
        api_button = gr.Button()
    api_button.click(
        on_gpu(cancellable(handlers.api_swap, outputs=2)),
        [
            api_image,
            api_mask,
            api_lora,
            lora_scale,
            prompt,
            strength,
            padding,
            steps,
            guidance,
            seed,
            api_face,
            api_faces,
            api_fast,
            api_photos,
            api_likeness,
            api_keep,
            api_dynamic,
        ],
        [api_out, record],
        api_name="swap",
        **gpu,
    )
    with gr.Row(visible=False):
        api_request = gr.Textbox(label="the swap as JSON: see SwapRequest (files are uploaded beside it)")
        api_reference = gr.File(type="filepath", label="photo of the person to find (face 'reference')")
        api_request_button = gr.Button()
    api_request_button.click(
        on_gpu(cancellable(handlers.api_request, outputs=2)),
        [api_request, api_image, api_mask, api_photos, api_reference],
        [api_out, record],
        api_name="swap_request",
        **gpu,
    )
    return person
