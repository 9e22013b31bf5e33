"""Several GPUs on one machine without Ray: one :class:`Engine` per device behind the one engine the app holds.

:class:`EnginePool` plans every swap itself (CPU work, as a single engine does) and hands each plan to
whichever of its engines is free, so as many swaps run at once as there are devices; the app sets its
queue's concurrency to :attr:`EnginePool.slots`. Each engine holds its own resident pipeline, and its own
lock, so a swap never waits for another device's work. The result is the one engine's: seeds are fixed
in the plan, before an engine is chosen.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from faceswap_core.engine import Engine, PreparedSwap, Progress, SwapResult
from faceswap_core.errors import SettingsError
from faceswap_core.settings import DEFAULT_FACE_BACKEND, ModelSpec, SwapSettings


def gpu_devices(count: int) -> list[str]:
    """``cuda:0`` .. ``cuda:N-1``, checked against the GPUs this machine has."""
    import torch

    found = torch.cuda.device_count()
    if not 1 <= count <= found:
        raise SettingsError(f"--gpus {count}: this machine has {found} CUDA GPU(s)")
    return [f"cuda:{index}" for index in range(count)]


class EnginePool(Engine):
    """An :class:`Engine` whose repaints run on the first free one of ``devices``' engines (one pipeline each)."""

    def __init__(
        self,
        model: ModelSpec,
        devices: Sequence[str],
        *,
        lora_dir: str | os.PathLike = "lora_weights",
        allow_paths: bool = True,
        landmarks: str = DEFAULT_FACE_BACKEND,
    ) -> None:
        if not devices:
            raise SettingsError("an engine pool needs at least one device")
        super().__init__(
            replace(model, device=devices[0]), lora_dir=lora_dir, allow_paths=allow_paths, landmarks=landmarks
        )
        self.engines = [
            Engine(replace(model, device=device), lora_dir=lora_dir, allow_paths=allow_paths, landmarks=landmarks)
            for device in devices
        ]
        for engine in self.engines:
            engine.loras = self.loras  # one registry: the app's viewer (whose people) holds for every engine
        self._free = list(self.engines)
        self._changed = threading.Condition()
        # loading is one at a time: diffusers builds models on PyTorch's "meta" device through process-wide
        # patches, and two loads in two threads break each other ("Cannot copy out of meta tensor")
        self._loading = threading.Lock()

    @property
    def slots(self) -> int:
        return len(self.engines)

    @property
    def loaded(self) -> bool:
        return all(engine.loaded for engine in self.engines)

    def load(self) -> Any:
        """Load every engine's pipeline (one per device); the first one's stands for the pool's."""
        for engine in self.engines:
            try:
                self._load(engine)
            except Exception:
                self.load_error = engine.load_error
                raise
        self.load_error = None
        return self.engines[0].pipeline

    def repaint(
        self,
        prepared: PreparedSwap,
        settings: Sequence[SwapSettings] | None = None,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SwapResult:
        """Repaint on the first free engine (waiting for one when all are busy)."""
        with self._taken() as engine:
            self._load(engine)
            return engine.repaint(prepared, settings, progress=progress, cancel=cancel)

    def _load(self, engine: Engine) -> None:
        with self._loading:
            engine.load()

    @contextmanager
    def parked(self) -> Iterator[None]:
        """Training takes the first device (the pool's own ``model.device``): its engine is parked and out of
        the pool meanwhile, and swaps go to the others."""
        with self._taken(self.engines[0]) as engine, engine.parked():
            yield

    @contextmanager
    def _taken(self, wanted: Engine | None = None) -> Iterator[Engine]:
        with self._changed:
            self._changed.wait_for(lambda: wanted in self._free if wanted is not None else bool(self._free))
            engine = wanted if wanted is not None else self._free[0]
            self._free.remove(engine)
        try:
            yield engine
        finally:
            with self._changed:
                self._free.append(engine)
                self._changed.notify_all()
