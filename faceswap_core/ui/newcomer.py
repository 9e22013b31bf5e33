"""The first minute on a fresh install: from nothing to a first result without hunting.

With nobody to pick, the section that adds a person is open and says so; once somebody exists it starts
closed, so Generate stays on the first screen. (Read on every page load: people come and go.)
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from faceswap_core.people import People

PERSON_SECTION = "Photos of the person: use some, or add a person"
NOBODY_SECTION = "Nobody to pick yet: add a person from 1–5 photos (no training needed)"
FIRST_STEPS = "**1.** Upload a photo, or press **Example**. **2.** Pick or add a person. **3.** Press **Generate**."


def person_section(people: People) -> Any:
    """The person section: open, and saying why, when there is nobody to pick."""
    nobody = not people.list()
    return gr.Accordion(label=NOBODY_SECTION if nobody else PERSON_SECTION, open=nobody)


def person_added() -> Any:
    """After adding a person the section closes (they are picked), bringing Generate back into view."""
    return gr.Accordion(label=PERSON_SECTION, open=False)
