"""The person picker and the likeness slider beside it, shared by the Swap, Train and video tabs."""

from __future__ import annotations

from typing import Any

import gradio as gr

from faceswap_core.engine import Engine
from faceswap_core.face_choice import NO_LORA, default_likeness, person_entries
from faceswap_core.people import Person
from faceswap_core.settings import MAX_IDENTITY_PHOTOS

NO_PHOTOS_INFO = "No photos: add some above"  # the likeness slider without photos to take a likeness from


def person_choices(engine: Engine, *, with_keep: bool = True) -> list[tuple[str, str]]:
    """The picker's entries: keep, base model only, then every person found now (see :func:`person_entries`)."""
    return person_entries(engine.loras, with_keep=with_keep)


def refresh_lora_picker(engine: Engine, current: str | None = NO_LORA, select: str | None = None) -> dict[str, Any]:
    """Re-read the people folder (new people show up without a restart); keep the choice if it still exists."""
    choices = person_choices(engine)
    values = {value for _, value in choices}
    wanted = select if select in values else current if current in values else NO_LORA
    return gr.Dropdown(choices=choices, value=wanted)


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
