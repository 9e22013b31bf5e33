"""Caption templates and the VQA captioner, with a tiny random BLIP-VQA model built locally."""

from __future__ import annotations

from pathlib import Path

import pytest
from vqa_factory import save_tiny_blip_vqa

from faceswap_core.captions import VQA_QUESTIONS, VqaCaptioner, compose_caption, template_caption
from faceswap_core.errors import ModelLoadError, SettingsError


def test_template_default_and_parts_in_fixed_order() -> None:
    assert template_caption() == "a photo of a woman face"
    caption = template_caption("man", background="a brick wall in the background", light="soft warm light")
    assert caption == "a photo of a man face, soft warm light, a brick wall in the background"


def test_template_drops_empty_parts_and_commas() -> None:
    assert template_caption("person", hair="", light=None, expression="calm,  smiling") == (
        "a photo of a person face, calm smiling"
    )


@pytest.mark.parametrize(
    ("class_word", "parts", "message"),
    [
        ("", {}, "class word"),
        ("woman", {"nose": "big"}, "unknown caption part 'nose'"),
        ("woman", {"hair": "x" * 200}, "hair"),
    ],
)
def test_template_rejects_bad_input(class_word: str, parts: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        template_caption(class_word, **parts)


def test_compose_caption_from_answers() -> None:
    answers = {
        "action": "sitting",
        "light": "natural",
        "light_color": "white",
        "expression": "smiling",
        "background": "trees",
        "hair": "brown",
        "hair_style": "long",
        "extra": "ignored",
    }
    assert compose_caption(answers, "woman") == (
        "a photo of a woman face, sitting, smiling expression, long brown hair, white natural light, "
        "trees in the background"
    )
    assert compose_caption({"action": "yes", "hair": "unknown"}) == "a photo of a woman face"


def test_vqa_captioner_with_tiny_model(tmp_path: Path, astronaut) -> None:
    captioner = VqaCaptioner(str(save_tiny_blip_vqa(tmp_path / "blip")), max_answer_tokens=4)
    answers = captioner.answers(astronaut)
    assert set(answers) == {q.key for q in VQA_QUESTIONS}
    assert all(isinstance(a, str) for a in answers.values())
    caption = captioner.caption(astronaut, "man")
    assert caption.startswith("a photo of a man face")
    assert "\n" not in caption
    assert caption == captioner.caption(astronaut, "man")  # greedy decoding: the same photo, the same caption


def test_vqa_captioner_missing_model_is_a_clear_error(tmp_path: Path, astronaut, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    captioner = VqaCaptioner(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="no-such-model") as info:
        captioner.caption(astronaut)
    assert "\n" not in str(info.value)
