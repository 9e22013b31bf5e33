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
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from faceswap_core.cluster import cluster_gpus
from faceswap_core.errors import ClusterError, FaceswapError, first_line
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
    ) -> None:
        self.model = model
        self.lora_dir = lora_dir
        self.landmarks = landmarks
        gpus = cluster_gpus()
        self.resources: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self.workers = workers or max(1, gpus)
        self.window = window or 2 * self.workers  # one running and one waiting per actor

    def map(
        self, work: Iterable[FrameWork], mask_settings: MaskSettings, cancel: threading.Event | None
    ) -> Generator[tuple[Frame, list[TrackPlan], Swapped], None, None]:
        import ray

        worker = ray.remote(max_restarts=-1, max_task_retries=0, **self.resources)(FrameWorker)
        actors = [worker.remote(self.model, self.lora_dir, self.landmarks) for _ in range(self.workers)]
        turns = itertools.count()

        def submit(pixels: np.ndarray, plans: list[TrackPlan]) -> Any:
            return actors[next(turns) % len(actors)].swap.remote(pixels, plans, mask_settings)

        pending: deque[tuple[Frame, list[TrackPlan], Any]] = deque()
        frames = iter(work)
        try:
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
                    None if ref is None else _frame_result(ref, lambda f=frame, p=plans: submit(f.pixels, p)),
                )
        finally:
            for actor in actors:
                with contextlib.suppress(ray.exceptions.RayError, ConnectionError):  # a cluster already gone
                    ray.kill(actor)


def _frame_result(ref: Any, resubmit: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """A frame's repaint, sent again (to the next actor) when the actor that had it died."""
    import ray

    attempt = 1
    while True:
        try:
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
