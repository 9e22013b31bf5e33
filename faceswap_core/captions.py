"""Training captions: a class word plus everything in the photo except the face itself.

Why describe everything but the face: words in a caption absorb what they describe, so naming the
light, the expression, the background and the hair keeps those out of the LoRA, and the identity
(the one thing left undescribed) is learnt by the class word ("woman", "man", "person"). Captions
are plain strings, editable per photo in the dataset's ``metadata.csv``.

The optional :class:`VqaCaptioner` asks a visual question answering model (BLIP-VQA by default) the
method's questions and composes the answers into such a caption. Its weights download on first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import ModelLoadError, SettingsError, first_line
from faceswap_core.settings import DEFAULT_CLASS_WORD, DEFAULT_VQA_MODEL

if TYPE_CHECKING:
    from faceswap_core.images import ImageInput

# The order in which parts appear in a caption: what happens first, the surroundings last.
CAPTION_PARTS = ("action", "expression", "pose", "hair", "light", "background")
MAX_PART_CHARS = 80


def _clean(text: str, what: str) -> str:
    """One line, single spaces, no commas (they separate parts) and a sane length."""
    cleaned = re.sub(r"\s+", " ", str(text).replace(",", " ")).strip()
    if len(cleaned) > MAX_PART_CHARS:
        raise SettingsError(f"caption {what} is longer than {MAX_PART_CHARS} characters: {cleaned[:40]!r}...")
    return cleaned


def template_caption(class_word: str = DEFAULT_CLASS_WORD, **parts: str | None) -> str:
    """``"a photo of a woman face"``, followed by the given parts in a fixed order.

    Parts are short phrases (``light="soft warm light"``, ``hair="long red hair"``); empty or ``None``
    parts are left out. Unknown part names raise :class:`SettingsError` so typos are not silently lost.
    """
    unknown = sorted(set(parts) - set(CAPTION_PARTS))
    if unknown:
        raise SettingsError(f"unknown caption part {unknown[0]!r}; use one of {', '.join(CAPTION_PARTS)}")
    word = _clean(class_word, "class word")
    if not word:
        raise SettingsError("the class word of a caption must not be empty (for example 'woman', 'man' or 'person')")
    phrases = [f"a photo of a {word} face"]
    for name in CAPTION_PARTS:
        value = parts.get(name)
        if value:
            phrase = _clean(value, name)
            if phrase:
                phrases.append(phrase)
    return ", ".join(phrases)


@dataclass(frozen=True)
class VqaQuestion:
    """One question of the method and how its answer becomes part of a caption."""

    key: str  # an answer slot; several questions may fill the same caption part
    question: str


# The method's questions: what happens in the photo, the light and its colour, the expression,
# the background and the hair. Never the face's features: those are the identity being learnt.
VQA_QUESTIONS = (
    VqaQuestion("action", "what is the person doing?"),
    VqaQuestion("light", "what kind of lighting is in the photo?"),
    VqaQuestion("light_color", "what color is the light?"),
    VqaQuestion("expression", "what is the facial expression of the person?"),
    VqaQuestion("background", "what is in the background?"),
    VqaQuestion("hair", "what color is the person's hair?"),
    VqaQuestion("hair_style", "how long is the person's hair?"),
)
# Answers that carry no information (or that a VQA model gives when it does not know).
_EMPTY_ANSWERS = {"", "none", "nothing", "no", "yes", "unknown", "n/a", "[unk]", "unk"}


MAX_ANSWER_WORDS = 5  # VQA answers are a word or two; longer output is the model rambling


def _answer(text: str) -> str:
    """A short lower-case answer, or "" when it says nothing; short enough that two fit in one part."""
    words = [w for w in re.sub(r"[^\w' -]", " ", text.lower()).split() if w not in ("[unk]", "unk")]
    answer = ""
    for word in words[:MAX_ANSWER_WORDS]:
        if len(answer) + len(word) + 1 > MAX_PART_CHARS // 2 - 8:
            break
        answer = f"{answer} {word}".strip()
    return "" if answer in _EMPTY_ANSWERS else answer


def compose_caption(answers: Mapping[str, str], class_word: str = DEFAULT_CLASS_WORD) -> str:
    """Turn VQA answers (keys of :data:`VQA_QUESTIONS`) into a template caption."""
    a = {key: _answer(value) for key, value in answers.items()}

    def with_noun(value: str, noun: str) -> str:
        return value if not value or value.endswith(noun) else f"{value} {noun}"

    light = " ".join(v for v in (a.get("light_color", ""), a.get("light", "")) if v)
    hair = " ".join(v for v in (a.get("hair_style", ""), a.get("hair", "")) if v)
    return template_caption(
        class_word,
        action=a.get("action", ""),
        expression=with_noun(a.get("expression", ""), "expression"),
        hair=with_noun(hair, "hair"),
        light=with_noun(light, "light"),
        background=f"{a['background']} in the background" if a.get("background") else "",
    )


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def vqa_available(model_id: str = DEFAULT_VQA_MODEL) -> bool:
    """Whether the VQA model is on this machine (a local folder, or the hub cache), without loading it.

    The app offers automatic captions only then: a first download (about 1.5 GB for BLIP-VQA) inside
    a web request would stall the page, and an offline server would fail after a long wait.
    """
    folder = Path(model_id)
    if folder.is_dir():
        return (folder / "config.json").is_file() and any((folder / name).is_file() for name in WEIGHT_FILES)
    from huggingface_hub import try_to_load_from_cache

    try:
        files = [try_to_load_from_cache(model_id, name) for name in ("config.json", *WEIGHT_FILES)]
    except ValueError:  # not a hub id either (huggingface_hub's validation errors are ValueErrors)
        return False
    return isinstance(files[0], str) and any(isinstance(found, str) for found in files[1:])


class VqaCaptioner:
    """Captions photos with a generative VQA model (BLIP-VQA family) through transformers.

    The model loads on the first call, not in ``__init__``, so building a captioner costs nothing
    until it is used; ``model_id`` is a hub id or a local folder written by ``save_pretrained``.
    """

    def __init__(self, model_id: str = DEFAULT_VQA_MODEL, *, device: str = "cpu", max_answer_tokens: int = 12) -> None:
        self.model_id = model_id
        self.device = device
        self.max_answer_tokens = max_answer_tokens
        self._processor: Any = None
        self._model: Any = None

    def load(self) -> None:
        """Load processor and model once; :class:`ModelLoadError` says how to fix a failure."""
        if self._model is not None:
            return
        from transformers import AutoModelForVisualQuestionAnswering, AutoProcessor

        from faceswap_core.models import LOADING

        try:
            with LOADING:
                processor = AutoProcessor.from_pretrained(self.model_id)
                model = AutoModelForVisualQuestionAnswering.from_pretrained(self.model_id)
        except (OSError, ValueError) as err:
            reason = first_line(err, 10_000)
            raise ModelLoadError(
                f"could not load the captioning model {self.model_id!r} ({reason[:160]}); connect to the internet "
                "once so its weights download, or give a local folder with the model"
            ) from None
        if not hasattr(model, "generate"):
            raise ModelLoadError(f"captioning model {self.model_id!r} cannot generate answers; use a BLIP-VQA model")
        self._processor = processor
        self._model = model.to(self.device).eval()

    def answers(self, image: ImageInput) -> dict[str, str]:
        """The raw answer to every question in :data:`VQA_QUESTIONS`, by key."""
        import torch

        from faceswap_core.images import load_image

        self.load()
        picture = load_image(image)
        questions = [q.question for q in VQA_QUESTIONS]
        inputs = self._processor(images=[picture] * len(questions), text=questions, return_tensors="pt", padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            tokens = self._model.generate(**inputs, max_new_tokens=self.max_answer_tokens)
        texts = self._processor.batch_decode(tokens, skip_special_tokens=True)
        return {q.key: text.strip() for q, text in zip(VQA_QUESTIONS, texts, strict=True)}

    def caption(self, image: ImageInput, class_word: str = DEFAULT_CLASS_WORD) -> str:
        """A caption for one photo that describes everything but the face."""
        return compose_caption(self.answers(image), class_word)
