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
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from faceswap_core.errors import BusyError, SettingsError
from faceswap_core.training.trainer import TrainProgress, TrainResult

DONE = object()  # what :meth:`TrainingJob.next_report` returns once the run has ended


class TrainingJob:
    """One training run in a daemon thread: its progress reports, its cancel event and its outcome."""

    def __init__(self, name: str, run: Callable[[Callable[[TrainProgress], None], threading.Event], TrainResult]):
        self.name = name
        self.cancel = threading.Event()
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.latest: TrainProgress | None = None  # the newest report, for "busy until" (the watcher drains the queue)
        self._reports: queue.Queue[Any] = queue.Queue()
        self._run = run
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"train-{name}", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.result = self._run(self._report, self.cancel)
        except BaseException as err:  # kept for whoever watches; the thread itself just ends
            self.error = err
        finally:
            self._ended.set()
            self._reports.put(DONE)

    def _report(self, progress: TrainProgress) -> None:
        self.latest = progress
        self._reports.put(progress)

    def busy_message(self) -> str:
        """What another visitor who asks to train is told: until when this run holds the training slot."""
        latest = self.latest
        if latest is None or latest.stage != "training" or latest.eta is None:
            return "training is busy: another training is starting; try again in a few minutes"
        until = time.strftime("%H:%M %Z", time.localtime(time.time() + latest.eta))
        return f"training is busy until ~{until} (step {latest.step} of {latest.total}); try again then"

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
    """The runs of one app, at most one per page (session) and ``slots`` in all; every method returns at once.

    Why a limit of its own: a training holds the GPU for minutes to hours. It runs beside the swaps
    (which have their own queue slot), so the number of trainings at once is what the GPU's memory
    decides, and a visitor who finds the slots taken is told until when instead of waiting unseen.
    """

    def __init__(self, gpu: Callable[[], AbstractContextManager[Any]] | None = None, slots: int = 1) -> None:
        self._gpu = gpu or nullcontext  # e.g. Engine.parked: the swap pipeline waits while training runs
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()
        self.slots = slots

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
            self._check_free(owner)
            job = self._jobs[owner] = TrainingJob(name, run)
        return job.start()

    def check_free(self, owner: str) -> None:
        """Raise now, before anything is written, when ``owner`` could not start a run (see :meth:`start`)."""
        with self._lock:
            self._check_free(owner)

    def _check_free(self, owner: str) -> None:
        running = self._jobs.get(owner)
        if running is not None and not running.ended:
            raise SettingsError("a training run of this page is already going; cancel it first")
        others = [job for job in self._jobs.values() if not job.ended]
        if len(others) >= self.slots:
            raise BusyError(min(others, key=_eta).busy_message())

    def training(self, name: str) -> bool:
        """Whether a run of the person ``name`` is going (it may not be resumed or restarted meanwhile)."""
        return any(job.name == name for job in self.running())

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


def _eta(job: TrainingJob) -> float:
    """Seconds until ``job`` ends as far as known; a run still starting sorts last."""
    latest = job.latest
    return latest.eta if latest is not None and latest.eta is not None else float("inf")
