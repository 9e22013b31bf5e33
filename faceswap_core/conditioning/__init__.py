"""Conditionings: each way of steering a face's repaint is one plug-in module behind :class:`Conditioning`.

The engine asks every plug-in, in order, what it contributes to a face's pipeline call; a new
conditioning (a ControlNet, a video-consistency term) is one new module and one entry in the
engine's list, or ``engine.conditionings.append(...)`` from outside the library.
"""

from faceswap_core.conditioning.base import Conditioning, Contribution, Plan, plan_for
from faceswap_core.conditioning.few_step import FewStepConditioning
from faceswap_core.conditioning.image_prompt import ImagePromptConditioning
from faceswap_core.conditioning.lora import LoraConditioning


def default_conditionings() -> list[Conditioning]:
    """The built-in plug-ins in the order they apply: few-step sampling first (it sets the guidance the
    image prompt reads), then the person's LoRA (after the few-step LoRA), then the image prompt."""
    return [FewStepConditioning(), LoraConditioning(), ImagePromptConditioning()]


__all__ = ["Conditioning", "Contribution", "Plan", "default_conditionings", "plan_for"]
