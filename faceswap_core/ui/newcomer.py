"""The first minute on a fresh install: from nothing to a first result without hunting.

With nobody to pick, the section that adds a person is open and says so; once somebody exists it starts
closed, so Generate stays on the first screen. (Read on every page load: people come and go.)
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from faceswap_core.people import People
from faceswap_core.settings import FAST_GUIDANCE, FAST_STEPS

PERSON_SECTION = "Photos of the person: use some, or add a person"
NOBODY_SECTION = "Nobody to pick yet: add a person from 1–5 photos (no training needed)"
STEPS_INFO = "More steps: finer detail, slower"
GUIDANCE_INFO = "How closely the prompt is followed (classifier-free guidance)"
FIRST_STEPS = "**1.** Upload a photo, or press **Example**. **2.** Pick or add a person. **3.** Press **Generate**."


def person_section(people: People) -> Any:
    """The person section: open, and saying why, when there is nobody to pick."""
    nobody = not people.list()
    return gr.Accordion(label=NOBODY_SECTION if nobody else PERSON_SECTION, open=nobody)


def person_added() -> Any:
    """After adding a person the section closes (they are picked), bringing Generate back into view."""
    return gr.Accordion(label=PERSON_SECTION, open=False)


def fast_truth(fast: bool) -> tuple[Any, Any]:
    """Steps and Guidance say what really runs: with Fast on, a few steps at low guidance replace them
    (their values stay, for when Fast goes off)."""
    if fast:
        steps = f"Fast is on: {FAST_STEPS.default:g} steps run instead"
        guidance = f"Fast is on: guidance {FAST_GUIDANCE.default:g} runs instead"
        return gr.Slider(interactive=False, info=steps), gr.Slider(interactive=False, info=guidance)
    return gr.Slider(interactive=True, info=STEPS_INFO), gr.Slider(interactive=True, info=GUIDANCE_INFO)
