"""Batches on Ray Data: a pool of actors, each holding one resident engine, maps the photos in order.

The request travels to the actors once (seeded on the driver); each photo's plan and repaint run on an
actor, and its PNG comes back to the driver, which alone writes files. Ray Data restarts an actor that
dies and retries the photos it held (``max_restarts``/``max_task_retries`` default to -1 for actor
pools), so a lost worker costs time, not results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from faceswap_core.cluster import cluster_gpus
from faceswap_core.errors import ClusterError, first_line
from faceswap_core.jobs.batch import Outcome
from faceswap_core.settings import DEFAULT_FACE_BACKEND

if TYPE_CHECKING:
    import numpy as np

    from faceswap_core.requests import SwapRequest
    from faceswap_core.settings import ModelSpec


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
