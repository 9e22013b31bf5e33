"""The app in the user's words (issue 21, item 8): a likeness in per cent, not a descriptor distance; no
command line, "base model" or "LoRA strength" on the page (expert terms stay in Advanced and tooltips)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from faceswap_core.engine import Engine
from faceswap_core.face_choice import NO_LORA, NO_PERSON
from faceswap_core.settings import ModelSpec
from faceswap_core.ui.demo import create_demo
from faceswap_core.ui.person_picker import person_choices
from faceswap_core.ui.swap_strengths import candidate_caption
from faceswap_core.ui.words import likeness, likeness_percent

JARGON = ("distance", "base model only", "python -m", "LoRA strength", "native size", "SDXL")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = str(tmp_path_factory.mktemp("words"))
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=folder, allow_paths=False)


def test_a_distance_reads_as_a_likeness() -> None:
    assert likeness_percent(0.0) == 100 and likeness_percent(0.6) == 50 and likeness_percent(1.5) == 0
    assert likeness(0.3) == "likeness 75 %, close match"
    assert likeness(0.55) == "likeness 54 %, some likeness"
    assert likeness(0.811) == "likeness 32 %, not alike"


def test_candidates_are_captioned_by_likeness() -> None:
    result = SimpleNamespace(record={"faces": [{"strength": 0.4}], "identity_distance": 0.3}, identity_distance=0.3)
    assert candidate_caption(result) == "strength 0.40 · likeness 75 %, close match"


def test_no_person_is_said_in_the_users_words(engine: Engine) -> None:
    assert (NO_PERSON, NO_LORA) in person_choices(engine)
    assert all("base model" not in label for label, _ in person_choices(engine))


def test_no_jargon_in_what_the_page_shows(engine: Engine) -> None:
    """Labels, hints, placeholders and texts of every visible component (the hidden API inputs aside)."""
    demo = create_demo(engine, load_model=False)
    hidden = {id(block) for block in demo.blocks.values() if getattr(block, "visible", True) is False}
    words = []
    for block in demo.blocks.values():
        parent = getattr(block, "parent", None)
        if id(block) in hidden or (parent is not None and id(parent) in hidden):
            continue
        for name in ("label", "info", "placeholder", "value"):
            value = getattr(block, name, None)
            if isinstance(value, str) and not isinstance(block, gr.State):
                words.append(value)
        words += [str(choice[0]) for choice in getattr(block, "choices", None) or [] if isinstance(choice, tuple)]
    found = {term: [w for w in words if term in w] for term in JARGON}
    assert not any(found.values()), found
