"""The Swap tab's person section: photos of the person for this swap, or kept as a new person (no training).

Adding a person aligns the uploaded photos in seconds; the new person is then picked for the chosen
face. :class:`PeopleHandlers` also says what is known about the picked person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from faceswap_core.errors import FaceswapError, SettingsError
from faceswap_core.face_choice import KEEP, default_prompt
from faceswap_core.images import check_header
from faceswap_core.people import check_person_name
from faceswap_core.settings import CLASS_WORDS, DEFAULT_CLASS_WORD, MAX_TRAIN_PHOTOS, SwapSettings
from faceswap_core.ui import guards
from faceswap_core.ui.common import user_errors
from faceswap_core.ui.newcomer import PERSON_SECTION
from faceswap_core.ui.person_picker import likeness_slider, refresh_lora_picker
from faceswap_core.ui.swap_faces import FaceHandlers


class PeopleHandlers(FaceHandlers):
    """What the person section and the person picker's description do."""

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
            facts.append(f"trained, saved at step {step}")
        elif person.lora is not None:
            facts.append("trained")
        else:
            facts.append("no training: the likeness comes from the photos")
        base = meta.get("base_model")
        warning = ""
        if base and base != self.engine.base_model:
            warning = " ⚠️ trained on another base model than the one loaded"
        text = f"**{person.name.partition('/checkpoint-')[0]}**" + (f": {', '.join(facts)}" if facts else "") + warning
        return text, gr.Textbox(placeholder=default_prompt(self.people, person.name))

    def api_add_person(self, fields: Mapping[str, Any]) -> tuple[Any, str]:
        """``/add_person`` for scripts: a name, photos and a class word -> the picker and what was added (the
        page's own Add also puts the person on the chosen face, a private event)."""
        picker, *_, note, _, _ = self.add_person({**fields, "photo": None})
        return picker, note

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
        self.likeness_from_uploads(photo, False)  # the upload is emptied: the other faces are as before it
        try:
            shown = self.assign({**fields, "person": person.name, "references": None})
        except gr.Error as exc:  # e.g. the photo expired meanwhile: the person is added all the same
            note += f" Not put on the photo: {exc.message}"
            return picker, gr.skip(), gr.skip(), gr.skip(), gr.skip(), likeness_slider(person, False), note, *emptied
        return picker, *shown, note, *emptied


@dataclass
class PersonSection:
    """The person section's components."""

    accordion: gr.Accordion
    references: gr.File
    new_name: gr.Textbox
    new_class_word: gr.Dropdown
    add: gr.Button
    note: gr.Markdown


def person_section() -> PersonSection:
    """Lay out the person section: the photos of the person, and a name and kind to keep them as a person."""
    with gr.Accordion(PERSON_SECTION, open=False, elem_id="person-photos") as accordion:
        with gr.Row(equal_height=True):  # one row: open on a fresh install, Generate stays on screen
            references = gr.File(
                label="Photos of their face (1-5)",  # one line: a longer label covered the drop area
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
        note = gr.Markdown(elem_id="add-person-note")
    return PersonSection(accordion, references, new_name, new_class_word, add, note)
