"""The app on a cluster: a Ray Serve deployment of the engine, and :class:`RemoteEngine`, the app's stand-in.

The Gradio process keeps the sessions and plans each swap itself (photo, faces, masks, people: CPU work
it already does for the editor); only the plan travels to a replica, which holds one resident pipeline
and streams back progress, then the result. Replicas scale between ``min_replicas`` and ``max_replicas``
with the requests waiting (one running per replica). A request whose replica dies is sent once more,
to whichever replica Serve picks; cancelling stops the replica's run within one denoising step.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from faceswap_core.engine import Engine, PreparedSwap, Progress, SwapResult
from faceswap_core.errors import CancelledError, ClusterError, FaceswapError, first_line
from faceswap_core.settings import DEFAULT_FACE_BACKEND

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from faceswap_core.settings import ModelSpec, SwapSettings

APP_NAME = "faceswap"
DEPLOYMENT_NAME = "engine"
CANCEL_POLL_S = 0.2


class EngineDeployment:
    """A Serve replica: one engine, loaded once; ``repaint`` streams ``("progress", step, total)`` events, then
    ``("result", SwapResult)`` or ``("error", FaceswapError)`` (a user error travels as a value, not a crash)."""

    def __init__(self, model: ModelSpec, lora_dir: str) -> None:
        from faceswap_core.cli import quiet_libraries

        quiet_libraries()
        self.engine = Engine(model, lora_dir=lora_dir, allow_paths=False)  # serves the public app: names only
        self.engine.load()

    async def repaint(self, prepared: PreparedSwap, settings: Sequence[SwapSettings] | None) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        cancel = threading.Event()

        def report(step: int, total: int) -> None:
            loop.call_soon_threadsafe(events.put_nowait, ("progress", step, total))

        def work() -> SwapResult:
            try:
                return self.engine.repaint(prepared, settings, progress=report, cancel=cancel)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, ("finished",))

        running = loop.run_in_executor(None, work)
        try:
            while (event := await events.get())[0] != "finished":
                yield event
            yield ("result", await running)
        except FaceswapError as err:
            yield ("error", err)
        finally:  # the client cancelled or went away: the engine stops at its next step
            cancel.set()


def deploy(model: ModelSpec, lora_dir: str, *, min_replicas: int = 1, max_replicas: int = 1) -> DeploymentHandle:
    """Run the engine deployment on the connected cluster (one GPU per replica where there are GPUs) and
    wait until its first replicas are up; no HTTP proxy, the app calls it through its handle."""
    from ray import serve

    from faceswap_core.cluster import cluster_gpus

    serve.start(proxy_location="Disabled")
    deployment = serve.deployment(
        EngineDeployment,
        name=DEPLOYMENT_NAME,
        ray_actor_options={"num_gpus": 1} if cluster_gpus() else {"num_cpus": 1},
        max_ongoing_requests=1,  # the engine repaints one plan at a time; the rest wait where the autoscaler sees them
        autoscaling_config={
            "min_replicas": min_replicas,
            "initial_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": 1,
        },
    )
    return serve.run(deployment.bind(model, os.fspath(lora_dir)), name=APP_NAME, route_prefix=None)


class RemoteEngine(Engine):
    """An :class:`Engine` whose repaints run on Serve replicas: the UI calls ``run`` (and sweeps call
    ``repaint``) exactly as on a local engine. It loads no model; planning stays in this process."""

    def __init__(
        self,
        model: ModelSpec,
        handle: DeploymentHandle,
        *,
        lora_dir: str | os.PathLike,
        landmarks: str = DEFAULT_FACE_BACKEND,
        replicas: int = 1,
    ) -> None:
        """``replicas``: the most the deployment scales to, so how many swaps the app sends at once."""
        super().__init__(model, lora_dir=lora_dir, allow_paths=False, landmarks=landmarks)  # plans are made here
        self.handle = handle
        self.replicas = replicas

    @property
    def slots(self) -> int:
        return self.replicas

    @property
    def loaded(self) -> bool:
        return True  # the replicas hold the model; deploy() returned once they were up

    def load(self) -> None:
        """Nothing to load here: the replicas loaded the model when they started."""

    def repaint(
        self,
        prepared: PreparedSwap,
        settings: Sequence[SwapSettings] | None = None,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SwapResult:
        """Repaint on a replica; sent once more if that replica died (progress then starts again)."""
        import ray

        try:
            return self._repaint_remote(prepared, settings, progress, cancel)
        except ray.exceptions.RayActorError:  # its replica died (or became unreachable): try once elsewhere
            pass
        except ray.exceptions.RayTaskError:
            raise
        except ray.exceptions.RayError as err:
            raise ClusterError(f"the Ray cluster failed ({first_line(err)})") from None
        try:
            return self._repaint_remote(prepared, settings, progress, cancel)
        except ray.exceptions.RayTaskError:
            raise
        except ray.exceptions.RayError as err:
            raise ClusterError(f"the swap failed twice on the Ray cluster ({first_line(err)})") from None

    def _repaint_remote(
        self,
        prepared: PreparedSwap,
        settings: Sequence[SwapSettings] | None,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> SwapResult:
        from ray.serve.exceptions import RequestCancelledError

        if cancel is not None and cancel.is_set():
            raise CancelledError("the swap was cancelled")
        response = self.handle.options(stream=True).repaint.remote(prepared, settings)
        finished = threading.Event()
        if cancel is not None:  # also while the request waits for a replica, when no events arrive
            threading.Thread(target=_cancel_when_set, args=(cancel, finished, response), daemon=True).start()
        try:
            for event in response:
                if event[0] == "progress" and progress is not None:
                    progress(event[1], event[2])
                elif event[0] == "error":
                    raise event[1]
                elif event[0] == "result":
                    return event[1]
                if cancel is not None and cancel.is_set():
                    response.cancel()
                    raise CancelledError("the swap was cancelled")
        except RequestCancelledError:
            raise CancelledError("the swap was cancelled") from None
        finally:
            finished.set()
        raise ClusterError("the replica ended the swap without a result")


def _cancel_when_set(cancel: threading.Event, finished: threading.Event, response: Any) -> None:
    while not finished.wait(CANCEL_POLL_S):
        if cancel.is_set():
            response.cancel()
            return
