"""Sampling: the quality schedule as configured, or fast mode's few-step LoRA with its own scheduler.

This plug-in owns the record's ``mode`` in both cases, so no other code writes or overwrites it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faceswap_core.conditioning.base import Contribution
from faceswap_core.errors import SettingsError
from faceswap_core.fast import (
    FastMode,
    FastPlan,
    fast_lora_file,
    fast_record,
    make_fast_scheduler,
    plan_fast_steps,
    scheduler_swapped,
)
from faceswap_core.loras import LoraInfo

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.settings import SwapSettings


class QualitySampling(Contribution):
    """The pipeline's own scheduler with the settings' steps and guidance: nothing changes but the record."""

    def record(self) -> dict[str, Any]:
        return fast_record(None)


class FewStepSampling(Contribution):
    """The few-step LoRA (first among the adapters), its scheduler for this call only, its steps and guidance."""

    def __init__(self, mode: FastMode, plan: FastPlan) -> None:
        self.mode, self.plan = mode, plan
        self.adapters = ((LoraInfo(f"fast: {mode.name}", fast_lora_file(mode.source, mode.weight_name)), mode.weight),)

    @contextmanager
    def applied(self, pipeline: Any, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        with scheduler_swapped(pipeline, make_fast_scheduler(self.mode, pipeline.scheduler.config)):
            yield {"num_inference_steps": self.plan.num_inference_steps, "guidance_scale": self.plan.guidance}

    def record(self) -> dict[str, Any]:
        return fast_record(self.mode, self.plan)


class FewStepConditioning:
    """``settings.fast`` picks the engine's fast mode (``ModelSpec.fast_lora``; LCM-LoRA SDXL by default)."""

    name = "sampling"

    def validate(self, options: Any) -> None:
        raise SettingsError("fast mode is chosen with settings.fast, not with extras")

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution:
        if not settings.fast:
            return QualitySampling()
        mode = engine.fast_mode
        return FewStepSampling(mode, plan_fast_steps(mode, settings.strength))


def steps_run(engine: Engine, settings: SwapSettings) -> int:
    """The denoising steps a call runs: fast mode's plan, else inpainting's ``int(steps * strength)``."""
    if settings.fast:
        return plan_fast_steps(engine.fast_mode, settings.strength).steps_run
    return max(1, int(settings.steps * settings.strength))
