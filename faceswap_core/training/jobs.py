"""Training runs that live outside the web request that started them.

Why: a web server's request threads (and its event loop) must never wait for training. A request
that waited inside ``train()`` for the training thread froze every page for minutes when its tab
was closed (Gradio closes an abandoned generator from the event loop). Here a run is a
:class:`TrainingJob` with its own thread; whoever watches it only reads its reports with a timeout,
and stopping it is setting an event, never joining a thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from faceswap_core.errors import SettingsError
from faceswap_core.training.trainer import TrainProgress, TrainResult

DONE = object()  # what :meth:`TrainingJob.next_report` returns once the run has ended


class TrainingJob:
    """One training run in a daemon thread: its progress reports, its cancel event and its outcome."""

    def __init__(self, name: str, run: Callable[[Callable[[TrainProgress], None], threading.Event], TrainResult]):
        self.name = name
        self.cancel = threading.Event()
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self._reports: queue.Queue[Any] = queue.Queue()
        self._run = run
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"train-{name}", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.result = self._run(self._reports.put, self.cancel)
        except BaseException as err:  # kept for whoever watches; the thread itself just ends
            self.error = err
        finally:
            self._ended.set()
            self._reports.put(DONE)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def next_report(self, timeout: float) -> TrainProgress | object | None:
        """The next progress report, :data:`DONE` once the run has ended, or None after ``timeout`` seconds."""
        try:
            return self._reports.get(timeout=timeout)
        except queue.Empty:
            return None

    def has_reports(self) -> bool:
        return not self._reports.empty()

    def wait(self, timeout: float | None = None) -> bool:
        """For tests and shutdown: wait until the run has ended; True when it has."""
        return self._ended.wait(timeout)


class TrainingJobs:
    """The runs of one app, at most one per page (session); every method returns at once."""

    def __init__(self, gpu: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self._gpu = gpu or nullcontext  # e.g. Engine.parked: the swap pipeline waits while training runs
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def start(
        self, owner: str, name: str, train: Callable[[Callable[[TrainProgress], None], threading.Event], TrainResult]
    ) -> TrainingJob:
        """Start ``train(progress, cancel)`` in its own thread for ``owner``, unless it already has a run going."""

        def run(progress: Callable[[TrainProgress], None], cancel: threading.Event) -> TrainResult:
            try:
                with self._gpu():
                    return train(progress, cancel)
            finally:
                self._forget(owner, job)

        with self._lock:
            running = self._jobs.get(owner)
            if running is not None and not running.ended:
                raise SettingsError("a training run of this page is already going; cancel it first")
            job = self._jobs[owner] = TrainingJob(name, run)
        return job.start()

    def get(self, owner: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(owner)

    def running(self) -> list[TrainingJob]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.ended]

    def _forget(self, owner: str, job: TrainingJob) -> None:
        with self._lock:
            if self._jobs.get(owner) is job:
                del self._jobs[owner]
