"""Pieces both tabs share: library errors as ``gr.Error``, ZeroGPU, the editor's mask layer, result files.

The mask lives in the ImageEditor's one layer. The layer is shown at half opacity so the face stays
visible under it, so a mask value ``m`` is stored as alpha ``m / 2`` and read back as ``2 * alpha``
(brush strokes, drawn at the same half opacity, read back as fully masked).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import numpy as np
from PIL import Image

from faceswap_core.errors import FaceswapError
from faceswap_core.images import save_png, to_rgb
from faceswap_core.settings import Range

MASK_COLOR = (0, 110, 255)  # blue stands out on every skin tone
MASK_OPACITY = 0.5
MASK_BRUSH = gr.Brush(colors=[("rgb(0, 110, 255)", MASK_OPACITY)], color_mode="fixed")
Fn = TypeVar("Fn", bound=Callable[..., Any])


def user_errors(fn: Fn) -> Fn:
    """Show a library error (a problem the user can fix) as a ``gr.Error`` with the same one-line message.

    ``functools.wraps`` keeps the signature visible to Gradio, so a ``gr.Progress`` default still works.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except FaceswapError as err:
                raise gr.Error(str(err)) from err

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FaceswapError as err:
            raise gr.Error(str(err)) from err

    return call  # type: ignore[return-value]


def on_gpu(fn: Fn, *, duration: int | None = None) -> Fn:
    """Wrap ``fn`` with ``spaces.GPU`` on Hugging Face ZeroGPU hardware; unchanged everywhere else."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn) if duration else spaces.GPU(fn)


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
    """Where result PNGs go: one temporary folder per app, handed to Gradio for download."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="faceswap-results-"))
        self._numbers = itertools.count(1)  # next() on a count is atomic: safe across request threads

    def save_display(self, image: Image.Image) -> Path:
        """The editor's copy of a photo as a JPEG file: small to send, and cached by the browser."""
        path = self.folder / f"photo-{next(self._numbers):04d}.jpg"
        image.convert("RGB").save(path, format="JPEG", quality=92)
        return path

    def save(self, image: Image.Image, record: dict[str, Any], stem: str = "faceswap") -> Path:
        """Save the full-size result with its parameters in the PNG text (as the command line does)."""
        seed = record["faces"][0]["seed"] if len(record.get("faces", [])) == 1 else None
        name = f"{stem}-{next(self._numbers):04d}" + (f"-seed{seed}" if seed is not None else "") + ".png"
        return save_png(image, self.folder / name, {"parameters": json.dumps(record)})
