"""Pieces both tabs share: library errors as ``gr.Error``, cancelling, ZeroGPU, the editor's mask layer, result files.

The mask lives in the ImageEditor's one layer. The layer is shown at half opacity so the face stays
visible under it, so a mask value ``m`` is stored as alpha ``m / 2`` and read back as ``2 * alpha``
(brush strokes, drawn at the same half opacity, read back as fully masked).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import inspect
import itertools
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import numpy as np
from PIL import Image, ImageOps

from faceswap_core.engine import Engine, SwapResult
from faceswap_core.errors import FaceswapError
from faceswap_core.images import to_rgb
from faceswap_core.owners import owner_key
from faceswap_core.records import save_result
from faceswap_core.settings import RESULT_MAX_AGE_S, Range
from faceswap_core.ui.guards import public_message

MASK_COLOR = (0, 110, 255)  # blue stands out on every skin tone
MASK_OPACITY = 0.5
MASK_BRUSH = gr.Brush(colors=[("rgb(0, 110, 255)", MASK_OPACITY)], color_mode="fixed")
HEARTBEAT_S = 0.5  # how often a running job looks whether its page is still there
Fn = TypeVar("Fn", bound=Callable[..., Any])
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DISK_FULL_MESSAGE = "the server has no disk space left to save this; try again later"
log = logging.getLogger("faceswap.app")
RESULT_PNG_LEVEL = 1  # zlib level of the full-size result PNG: fast, the download a little larger
MAX_CONTINUED_SESSIONS = 10_000
_continued: OrderedDict[str, str] = OrderedDict()  # browser session -> the owner it continues (after a reload)
_continued_lock = threading.Lock()
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("faceswap_cancel", default=None)


def user_error(err: FaceswapError | gr.Error, where: str) -> gr.Error:
    """The ``gr.Error`` for a problem the user can fix: one line for the page (no server paths) and one for the log.

    Gradio prints a traceback for every ``gr.Error`` unless told not to; a user's mistake is not a bug.
    """
    message = public_message(err.message if isinstance(err, gr.Error) else str(err))
    log.warning("%s: %s", where, message)
    return gr.Error(message, print_exception=False)


def user_errors(fn: Fn) -> Fn:
    """Show a library error (a problem the user can fix) as a ``gr.Error`` with the same one-line message.

    ``functools.wraps`` keeps the signature visible to Gradio, so a ``gr.Progress`` default still works.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except (FaceswapError, gr.Error) as err:
                raise user_error(err, fn.__name__) from None
            except OSError as err:
                if err.errno not in DISK_FULL:
                    raise
                raise user_error(gr.Error(DISK_FULL_MESSAGE), fn.__name__) from None

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FaceswapError, gr.Error) as err:
            raise user_error(err, fn.__name__) from None
        except OSError as err:  # the server's disk or quota is full: not the visitor's fault, nor a bug
            if err.errno not in DISK_FULL:
                raise
            raise user_error(gr.Error(DISK_FULL_MESSAGE), fn.__name__) from None

    return call  # type: ignore[return-value]


def current_owner() -> str | None:
    """Who is asking, as :mod:`faceswap_core.owners` stores it: the logged-in user, else the browser session.

    Read from the request Gradio is serving on this thread (its context variable, which it also
    copies into :func:`cancellable`'s worker); None outside a request (start-up, background jobs).
    """
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return None
    user = getattr(request, "username", None)
    session = getattr(request, "session_hash", None)
    if not user and session:
        with _continued_lock:
            continued = _continued.get(session)
        if continued is not None:
            return continued
    identity = f"user:{user}" if user else f"session:{session or uuid.uuid4().hex}"
    return owner_key(identity)


def continue_owner(owner: str) -> None:
    """The browser session asking now continues the one that was ``owner``: a reload brought back its kept
    work (see ``session_keep``), and the people that session added must come back with it.

    Only the server's own record of the kept work names ``owner``, never the browser. Bounded: the oldest
    continuations are forgotten first (their pages have long been closed or reloaded again).
    """
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    session = getattr(request, "session_hash", None)
    if request is None or getattr(request, "username", None) or not session:
        return  # a logged-in user is the same owner on every page already
    with _continued_lock:
        _continued[session] = owner
        _continued.move_to_end(session)
        while len(_continued) > MAX_CONTINUED_SESSIONS:
            _continued.popitem(last=False)


def said_in_status(fn: Fn, outputs: int) -> Fn:
    """For a generator handler whose first of ``outputs`` is a status line: a refusal is written there too,
    so once the pop-up fades the status still says why nothing ran (not a bare "Error" badge)."""

    @functools.wraps(fn)
    def generator(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except gr.Error as err:
            yield (f"⚠️ {err.message}", *(gr.skip() for _ in range(outputs - 1)))
            raise

    return generator  # type: ignore[return-value]


def current_cancel() -> threading.Event | None:
    """The cancel event of the request this handler serves (set by :func:`cancellable`), or None."""
    return _CANCEL.get()


def cancellable(fn: Callable[..., Any], outputs: int) -> Callable[..., Any]:
    """Run the sync handler ``fn`` so that a cancelled or abandoned request stops it within a step.

    Gradio cannot stop a sync handler: the Stop button (or ``Job.cancel()``) only cancels the asyncio
    task that waits for it, and a closed tab only marks the job dead, which Gradio looks at between
    a generator's outputs. So ``fn`` runs in a worker thread while this async generator waits, sending
    "no change" (``outputs`` skips) every :data:`HEARTBEAT_S`; when the task is cancelled or Gradio
    closes the generator, the request's event is set and the engine stops at its next step.
    ``fn`` reads the event with :func:`current_cancel`.
    """

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        cancel = threading.Event()
        context = contextvars.copy_context()
        context.run(_CANCEL.set, cancel)
        future = asyncio.get_running_loop().run_in_executor(None, functools.partial(context.run, fn, *args, **kwargs))
        skip = tuple(gr.skip() for _ in range(outputs)) if outputs > 1 else gr.skip()
        try:
            while not future.done():
                done, _ = await asyncio.wait({future}, timeout=HEARTBEAT_S)
                if not done:
                    yield skip
            result = future.result()
        finally:
            cancel.set()  # finished, failed, cancelled or abandoned: nothing of this request may go on
            if not future.done():
                future.add_done_callback(_ignore_outcome)
        yield result

    return run


def _ignore_outcome(future: Any) -> None:
    with contextlib.suppress(BaseException):
        future.result()  # a cancelled swap ends with CancelledError; nobody is waiting for it any more


def gpu_queue(engine: Engine) -> dict[str, Any]:
    """Event options for GPU work (swaps, ranking, training): one queue, as many at once as ``engine`` has
    slots (its devices or replicas). Gradio keeps the lowest limit given for an id, so every event sets this."""
    return {"concurrency_id": "gpu", "concurrency_limit": engine.slots}


def on_gpu(fn: Fn, *, duration: int | None = None) -> Fn:
    """Wrap ``fn`` with ``spaces.GPU`` on Hugging Face ZeroGPU hardware; unchanged everywhere else."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn) if duration else spaces.GPU(fn)


def by_name(fn: Callable[..., Any], components: Mapping[str, Any], *, progress: bool = False) -> Callable[..., Any]:
    """An event function that takes Gradio's {component: value} dict and calls ``fn`` with {field: value}.

    Inputs given as a set of components arrive as one dict, so adding a setting is one new entry in
    ``components`` instead of a new positional argument in five places. (No ``functools.wraps``:
    Gradio would read ``fn``'s signature through it and miss the ``gr.Progress`` below.)
    """
    names = {component: name for name, component in components.items()}

    def rename(data: dict[Any, Any]) -> dict[str, Any]:
        return {names[component]: value for component, value in data.items() if component in names}

    def call(data: dict[Any, Any]) -> Any:
        return fn(rename(data))

    def call_with_progress(data: dict[Any, Any], progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:
        return fn(rename(data), progress=progress)

    chosen = call_with_progress if progress else call
    chosen.__name__ = getattr(fn, "__name__", "handler")
    chosen.__doc__ = fn.__doc__
    return chosen


def range_slider(allowed: Range, *, label: str, value: float | None = None, **kwargs: Any) -> gr.Slider:
    """A slider over one of the settings' ranges, so the UI offers exactly what the library accepts."""
    start = allowed.default if value is None else value
    return gr.Slider(allowed.minimum, allowed.maximum, value=start, step=allowed.step, label=label, **kwargs)


def editor_image(value: dict[str, Any] | None) -> Image.Image | None:
    """The photo in the editor as RGB (transparent parts on white, as viewers show them), or None."""
    if not value or value.get("background") is None:
        return None
    background = value["background"]
    image = background if isinstance(background, Image.Image) else Image.fromarray(np.asarray(background))
    # Masks are drawn on the photo as it is shown, upright; the canvas shows it with its EXIF rotation.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def editor_mask(value: dict[str, Any] | None) -> Image.Image | None:
    """The mask painted in the editor's layers as 'L' (255 = replace), or None when nothing is painted."""
    if not value:
        return None
    alpha: np.ndarray | None = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        image = layer if isinstance(layer, Image.Image) else Image.fromarray(np.asarray(layer))
        if image.mode != "RGBA":
            continue
        channel = np.asarray(image.getchannel("A"), dtype=np.uint16)
        alpha = channel if alpha is None else np.maximum(alpha, channel)
    if alpha is None or not alpha.any():
        return None
    return Image.fromarray(np.clip(alpha * 2, 0, 255).astype(np.uint8), mode="L")


def mask_layer(mask: Image.Image) -> Image.Image:
    """An RGBA layer that shows ``mask`` at half opacity and reads back as ``mask`` (see the module doc)."""
    alpha = (np.asarray(mask.convert("L"), dtype=np.uint16) + 1) // 2
    layer = np.zeros((mask.height, mask.width, 4), dtype=np.uint8)
    layer[..., :3] = MASK_COLOR
    layer[..., 3] = alpha.astype(np.uint8)
    return Image.fromarray(layer, mode="RGBA")


def editor_value(image: Image.Image, mask: Image.Image | None = None) -> dict[str, Any]:
    """An ImageEditor value: the photo with the mask as its one editable layer."""
    return {"background": image, "layers": [mask_layer(mask)] if mask is not None else [], "composite": None}


class ResultFiles:
    """Where result PNGs go: one temporary folder per app, handed to Gradio for download.

    Files older than ``max_age_s`` are deleted as new ones are saved, so a long-running public app
    does not fill its disk.
    """

    def __init__(self, max_age_s: float = RESULT_MAX_AGE_S) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="faceswap-results-"))
        self.max_age_s = max_age_s
        self._numbers = itertools.count(1)  # next() on a count is atomic: safe across request threads

    def save_display(self, image: Image.Image) -> Path:
        """The editor's copy of a photo as a JPEG file: small to send, and cached by the browser."""
        self.prune()
        path = self.folder / f"photo-{next(self._numbers):04d}.jpg"
        image.convert("RGB").save(path, format="JPEG", quality=92)
        return path

    def save(self, result: SwapResult, record: dict[str, Any], stem: str = "faceswap") -> Path:
        """Save the full-size result with its public ``record`` (and painted mask) in the PNG, as the CLI does."""
        self.prune()
        seed = record["faces"][0]["seed"] if len(record.get("faces", [])) == 1 else None
        name = f"{stem}-{next(self._numbers):04d}" + (f"-seed{seed}" if seed is not None else "") + ".png"
        # the page waits for this file: fast compression (the download is a little larger)
        return save_result(result, self.folder / name, record, compress_level=RESULT_PNG_LEVEL)

    def servable(self, path: str | Path) -> str:
        """``path`` as Gradio may send it to the page: as is inside the working or temporary folder, else a copy.

        Why: Gradio sends only files under those folders (or ``allowed_paths``, which would open the
        whole folder to every visitor), and ``--lora-dir`` may be elsewhere (a Space's ``/data``).
        """
        source = Path(path)
        resolved = source.resolve()
        if any(resolved.is_relative_to(Path(root).resolve()) for root in (Path.cwd(), tempfile.gettempdir())):
            return str(source)
        self.prune()
        copy = self.folder / f"shown-{next(self._numbers):04d}-{source.name}"
        shutil.copyfile(source, copy)
        return str(copy)

    def prune(self) -> None:
        oldest = time.time() - self.max_age_s
        for path in self.folder.iterdir():  # results (.png) and the editor's photo copies (.jpg)
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < oldest:
                    path.unlink()
