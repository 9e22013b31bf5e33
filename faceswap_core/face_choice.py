"""What each face of a photo becomes when somebody picks it by hand, and the request those picks make.

The Swap tab's person picker offers "keep this face", "no person" (the base model) and every person;
each face that gets a person carries a :class:`FaceChoice`. This module owns those values, where the
likeness and the prompt start for a person, and :func:`choices_request`, the one place picks become a
:class:`~faceswap_core.requests.SwapRequest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceswap_core.captions import template_caption
from faceswap_core.errors import FaceswapError, SettingsError
from faceswap_core.identity_adapter import default_identity_scale
from faceswap_core.people import People, Person
from faceswap_core.requests import FaceRequest, SwapRequest
from faceswap_core.settings import STRENGTH, SwapSettings

if TYPE_CHECKING:
    from faceswap_core.images import ImageInput
    from faceswap_core.loras import LoraRegistry

KEEP = "__keep__"  # the person picker's value for "leave this face as it is"
NO_LORA = ""  # the person picker's value for "repaint with the base model only"
NO_PERSON = "A new face (no one in particular)"  # its label: the base model, said in the user's words
NEW_FACE = "a new face"  # the same in a sentence
BASE_MODEL = Person(NO_LORA)  # "no person": no LoRA, no photos of its own (the uploaded ones may still steer it)


@dataclass
class FaceChoice:
    """What one face becomes: a person (a name from :class:`People`, or "" for the base model), a strength,
    a prompt, and the likeness: the weight of the person's photos (None: the person's default, 0: off)."""

    person: str = NO_LORA
    strength: float = STRENGTH.default
    prompt: str = ""
    likeness: float | None = None


def person_entries(loras: LoraRegistry, *, with_keep: bool = True) -> list[tuple[str, str]]:
    """(label, value) for a person picker: keep, base model only, then every person found now, labelled with
    what it has (photos, a LoRA or both); a trained person's checkpoints follow it, the recommended one starred."""
    from faceswap_core.training.ranking import recommended_in

    keep = [("Keep this face (no change)", KEEP)] if with_keep else []
    recommended = recommended_in(loras.folder)
    people = [
        (f"{person.label} ★ recommended" if person.name in recommended else person.label, person.name)
        for person in People(loras).list()
    ]
    return [*keep, (NO_PERSON, NO_LORA), *people]


def person_of(people: People, name: str) -> Person:
    """The person behind a picker value ("" is the base model); "keep" repaints nothing, so it is refused."""
    if name == KEEP:
        raise SettingsError("'Keep this face' repaints nothing: pick a person (or 'No person') to replace a face")
    return BASE_MODEL if name == NO_LORA else people.get(name)


def default_likeness(person: Person, uploaded: bool) -> float:
    """Where the likeness starts: the person's own photos, else the uploaded ones (weaker beside a LoRA, which
    carries most of the likeness), else 0: there is nothing to take a likeness from."""
    if person.photos:
        return person.likeness
    if uploaded:
        return default_identity_scale(person.lora is not None)
    return 0.0


def default_prompt(people: People, name: str) -> str:
    """The caption template of the person's class word (a man is "a photo of a man face"), else the default."""
    if name in (NO_LORA, KEEP):
        return SwapSettings().prompt
    try:
        class_word = people.get(name).class_word
    except FaceswapError:
        class_word = None
    return template_caption(class_word) if class_word else SwapSettings().prompt


def face_request(people: People, index: int | None, choice: FaceChoice) -> FaceRequest:
    """One face of the request: its person (checked now, by name only), strength, prompt and likeness."""
    person_of(people, choice.person)
    prompt = choice.prompt or default_prompt(people, choice.person)
    return FaceRequest(index, choice.person, choice.strength, prompt, choice.likeness)


def choices_request(
    people: People,
    image: ImageInput,
    choices: Sequence[tuple[int | None, FaceChoice]],
    settings: SwapSettings,
    mask: ImageInput | None = None,
) -> SwapRequest:
    """The request the picks describe: each (face index or None for "where the mask paints", choice), validated."""
    faces = tuple(face_request(people, index, choice) for index, choice in choices)
    return SwapRequest(image, faces=faces, settings=settings, mask=mask).validate()
