"""The protocol every conditioning plug-in follows, and the per-face plan the engine builds from them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from faceswap_core.errors import SettingsError

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.loras import LoraInfo
    from faceswap_core.settings import SwapSettings


class Contribution:
    """What one plug-in adds to one face's call; the defaults add nothing.

    ``adapters`` are LoRAs to activate with their weights; ``applied`` runs under the GPU lock around
    the call and yields the call arguments it adds or replaces, given the call as it stands (so an
    image prompt sees the guidance a few-step mode chose), restoring any pipeline state on exit;
    ``record`` says what it did, for the result's record.
    """

    adapters: tuple[tuple[LoraInfo, float], ...] = ()

    @contextmanager
    def applied(self, pipeline: Any, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        yield {}

    def record(self) -> dict[str, Any]:
        return {}


class Conditioning(Protocol):
    """A plug-in: ``name`` is its key in ``SwapSettings.extras`` (its own options, checked by ``validate``);
    ``contribution`` is the CPU part for one face (loading and caching what it needs), None when it has
    nothing to add for these settings."""

    name: str

    def validate(self, options: Any) -> None: ...

    def contribution(self, engine: Engine, settings: SwapSettings) -> Contribution | None: ...


@dataclass(frozen=True)
class Plan:
    """Everything that conditions one face's call: what each plug-in contributes, in order."""

    contributions: tuple[Contribution, ...] = ()

    @property
    def adapters(self) -> tuple[tuple[LoraInfo, float], ...]:
        return tuple(adapter for contribution in self.contributions for adapter in contribution.adapters)

    @property
    def adapter_key(self) -> tuple[tuple[str, float], ...]:
        """Plans with the same key need no LoRA switch between them (the executor groups by it)."""
        return tuple((str(info.path), weight) for info, weight in self.adapters)

    def record(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"adapters": [{"lora": info.name, "weight": weight} for info, weight in self.adapters]}
        for contribution in self.contributions:
            entry.update(contribution.record())
        return entry


def plan_for(engine: Engine, settings: SwapSettings, conditionings: Sequence[Conditioning]) -> Plan:
    """Ask every plug-in for its part of one face's call; options naming no plug-in are refused."""
    known = {conditioning.name for conditioning in conditionings}
    unknown = sorted(set(settings.extras) - known)
    if unknown:
        raise SettingsError(f"unknown conditioning option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for conditioning in conditionings:
        if conditioning.name in settings.extras:
            conditioning.validate(settings.extras[conditioning.name])
    found = (conditioning.contribution(engine, settings) for conditioning in conditionings)
    return Plan(tuple(contribution for contribution in found if contribution is not None))
