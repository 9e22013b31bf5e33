"""Batches on Ray Data, clips on a pool of Ray actors: each actor holds one resident engine.

**Batches**: Ray Data's actor pool maps the photos in order.
The request travels to the actors once (seeded on the driver); each photo's plan and repaint run on an
actor, and its PNG comes back to the driver, which alone writes files. Ray Data restarts an actor that
dies and retries the photos it held (``max_restarts``/``max_task_retries`` default to -1 for actor
pools), so a lost worker costs time, not results.

**Clips** (:class:`RayFrames`): the driver streams the decoded frames with their plans to the actors, a
bounded window ahead, and takes the repaints back in frame order; a frame lost with its actor is sent again.
The frames come from the driver (a clip decoded once), not from a dataset the workers read.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from faceswap_core.cluster import cluster_gpus
from faceswap_core.errors import CancelledError, ClusterError, FaceswapError, first_line
from faceswap_core.jobs.batch import Outcome
from faceswap_core.settings import DEFAULT_FACE_BACKEND

if TYPE_CHECKING:
    import threading

    import numpy as np

    from faceswap_core.media import Frame
    from faceswap_core.requests import SwapRequest
    from faceswap_core.settings import MaskSettings, ModelSpec
    from faceswap_core.video import FrameWork, Swapped, TrackPlan

FRAME_ATTEMPTS = 3  # a frame is sent to at most this many actors before the clip stops with an error
# An engine actor placed on the cluster and its model loaded (a real SDXL load takes minutes); past this, no room.
WORKER_START_TIMEOUT_S = 900.0
CANCEL_POLL_S = 0.25  # how often a wait for a frame on the cluster looks at the cancel flag


def check_room(workers: int, resources: dict[str, Any]) -> None:
    """Refuse at once more engine actors than the whole cluster can ever hold (each takes one GPU, or one CPU)."""
    import ray

    kind = "GPU" if "num_gpus" in resources else "CPU"
    total = int(ray.cluster_resources().get(kind, 0))
    if workers > total:
        raise ClusterError(
            f"the Ray cluster has {total} {kind}(s) and each of the {workers} engine workers needs one: "
            f"ask for at most {total} with --workers"
        )


class EngineWorker:
    """A Ray Data actor: builds its engine (and loads the model) once, then swaps one photo per call."""

    def __init__(self, model: ModelSpec, lora_dir: str, landmarks: str, request: SwapRequest) -> None:
        from faceswap_core.cli import quiet_libraries
        from faceswap_core.engine import Engine

        quiet_libraries()
        self.engine = Engine(model, lora_dir=lora_dir, landmarks=landmarks)
        self.engine.load()
        self.request = request

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        from faceswap_core.jobs.batch import swap_photo

        pngs, entries = [], []
        for photo in batch["photo"]:
            png, entry = swap_photo(self.engine, self.request, str(photo))
            pngs.append(png or b"")
            entries.append(json.dumps(entry))
        return {"index": batch["index"], "png": np.array(pngs, dtype=object), "entry": np.array(entries)}


class RayExecutor:
    """Runs a batch on the connected cluster with ``workers`` engine actors (one GPU each where there are GPUs)."""

    def __init__(
        self, model: ModelSpec, lora_dir: str, *, workers: int | None = None, landmarks: str = DEFAULT_FACE_BACKEND
    ) -> None:
        self.model = model
        self.lora_dir = lora_dir
        self.landmarks = landmarks  # the workers find the faces: the same backend as a local run
        gpus = cluster_gpus()
        self.resources: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self.workers = workers or max(1, gpus)

    def map(self, request: SwapRequest, photos: Sequence[str]) -> Iterator[tuple[int, Outcome]]:
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        check_room(min(self.workers, len(photos)), self.resources)
        context = DataContext.get_current()
        context.execution_options.preserve_order = True  # results come back in the photos' order
        context.enable_progress_bars = False  # the command prints its own progress
        rows = [{"index": i, "photo": photo} for i, photo in enumerate(photos)]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EngineWorker,
            fn_constructor_kwargs={
                "model": self.model,
                "lora_dir": self.lora_dir,
                "landmarks": self.landmarks,
                "request": request,
            },
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=min(self.workers, len(rows))),
            **self.resources,
        )
        try:
            for row in dataset.iter_rows():
                yield int(row["index"]), (bytes(row["png"]) or None, json.loads(row["entry"]))
        except ray.exceptions.RayTaskError:
            raise  # a bug in a worker: its traceback, not a cluster message
        except (ray.exceptions.RayError, ConnectionError) as err:
            message = f"the Ray cluster failed during the batch ({first_line(err)}); run it again to resume"
            raise ClusterError(message) from None


class FrameWorker:
    """A Ray actor for clips: builds its engine (and loads the model) once, then repaints one frame per call."""

    def __init__(self, model: ModelSpec, lora_dir: str, landmarks: str) -> None:
        from faceswap_core.cli import quiet_libraries
        from faceswap_core.engine import Engine

        quiet_libraries()
        self.engine = Engine(model, lora_dir=lora_dir, landmarks=landmarks)
        self.engine.load()

    def ready(self) -> bool:
        """Answered once the actor is placed and its model loaded: the driver waits for this, with a bound."""
        return True

    def swap(
        self, pixels: np.ndarray, plans: list[TrackPlan], mask_settings: MaskSettings
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        from faceswap_core.video import swap_frame

        output, mask = swap_frame(self.engine, pixels, plans, mask_settings=mask_settings)
        return output, np.asarray(mask)


class RayFrames:
    """A clip's repaints on the connected cluster: ``workers`` engine actors (one GPU each where there are GPUs).

    The driver decodes and tracks; each frame with faces goes to an actor with its plans (the seeds are in
    them), at most ``window`` frames ahead of the one the driver waits for, and the results are handed back
    in frame order. A frame whose actor dies is sent to the next actor (Ray restarts the dead one), up to
    :data:`FRAME_ATTEMPTS` times, so a lost worker costs time, not frames.
    """

    def __init__(
        self,
        model: ModelSpec,
        lora_dir: str,
        *,
        workers: int | None = None,
        landmarks: str = DEFAULT_FACE_BACKEND,
        window: int | None = None,
        start_timeout_s: float = WORKER_START_TIMEOUT_S,
    ) -> None:
        self.model = model
        self.start_timeout_s = start_timeout_s
        self.lora_dir = lora_dir
        self.landmarks = landmarks
        gpus = cluster_gpus()
        self.resources: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self.workers = workers or max(1, gpus)
        self.window = window or 2 * self.workers  # one running and one waiting per actor

    def _wait_started(self, actors: list[Any], cancel: threading.Event | None) -> None:
        """Until every actor is placed and has loaded its model; a cluster without room now fails in a bound."""
        import ray

        started = [actor.ready.remote() for actor in actors]
        waiting, deadline = started, time.monotonic() + self.start_timeout_s
        while waiting and time.monotonic() < deadline:
            _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=CANCEL_POLL_S)
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled while the engine workers were starting; nothing was repainted")
        if waiting:
            kind = "GPU" if "num_gpus" in self.resources else "CPU"
            free = int(ray.available_resources().get(kind, 0))
            raise ClusterError(
                f"{len(waiting)} of {len(actors)} engine workers did not start within {self.start_timeout_s:g} s: "
                f"the Ray cluster has no room for them now ({free} {kind}(s) free); try later or with fewer --workers"
            )
        try:
            ray.get(started)
        except ray.exceptions.RayActorError as err:  # its model could not be loaded, say
            raise ClusterError(f"an engine worker could not start on the Ray cluster: {first_line(err)}") from None

    def map(
        self, work: Iterable[FrameWork], mask_settings: MaskSettings, cancel: threading.Event | None
    ) -> Generator[tuple[Frame, list[TrackPlan], Swapped], None, None]:
        import ray

        check_room(self.workers, self.resources)
        worker = ray.remote(max_restarts=-1, max_task_retries=0, **self.resources)(FrameWorker)
        actors = [worker.remote(self.model, self.lora_dir, self.landmarks) for _ in range(self.workers)]
        turns = itertools.count()

        def submit(pixels: np.ndarray, plans: list[TrackPlan]) -> Any:
            return actors[next(turns) % len(actors)].swap.remote(pixels, plans, mask_settings)

        pending: deque[tuple[Frame, list[TrackPlan], Any]] = deque()
        frames = iter(work)
        try:
            self._wait_started(actors, cancel)
            while True:
                while len(pending) < self.window and (item := next(frames, None)) is not None:
                    frame, plans = item
                    pending.append((frame, plans, submit(frame.pixels, plans) if plans else None))
                if not pending:
                    return
                frame, plans, ref = pending.popleft()
                yield (
                    frame,
                    plans,
                    None if ref is None else _frame_result(ref, lambda f=frame, p=plans: submit(f.pixels, p), cancel),
                )
        finally:
            for actor in actors:
                with contextlib.suppress(ray.exceptions.RayError, ConnectionError):  # a cluster already gone
                    ray.kill(actor)


def _frame_result(
    ref: Any, resubmit: Callable[[], Any], cancel: threading.Event | None
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's repaint, sent again (to the next actor) when the actor that had it died; a cancel does not wait
    for it (the actors are killed on the way out, so the repaint in flight stops too)."""
    import ray

    attempt = 1
    while True:
        try:
            while not ray.wait([ref], timeout=CANCEL_POLL_S)[0]:
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled; the frames being repainted on the cluster were dropped")
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, FaceswapError):
                raise err.cause from None  # a user error raised on the worker: its one line
            raise  # a bug in a worker: its traceback, not a cluster message
        except ray.exceptions.RayActorError as err:
            if attempt >= FRAME_ATTEMPTS:
                raise ClusterError(f"a frame failed {attempt} times on the Ray cluster ({first_line(err)})") from None
            attempt += 1
            ref = resubmit()
        except (ray.exceptions.RayError, ConnectionError) as err:
            message = f"the Ray cluster failed during the clip ({first_line(err)}); run it again to resume"
            raise ClusterError(message) from None
