"""Checks every event handler runs on its arguments: each one is a public HTTP endpoint, not only a button.

Anyone can call any handler with ``gradio_client`` and send values no widget would: NaN, ``None``,
a path instead of a LoRA name, sixty strengths, an image that declares 15000x15000 pixels. These
functions turn such values into one clear :class:`SettingsError` (shown as ``gr.Error``) before any
work starts, and keep server paths out of what the page and the API send back.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.image_editor import EditorData

from faceswap_core.errors import BadImageError, SettingsError
from faceswap_core.images import check_header
from faceswap_core.requests import checked_text
from faceswap_core.settings import MAX_IDENTITY_PHOTOS, MAX_PIXELS, MAX_PROMPT_CHARS, Range, plain_number

log = logging.getLogger("faceswap.app")
MAX_EDITOR_LAYERS = 4  # the Swap tab uses one; a few more cost little
MAX_EDITOR_UPLOADS = 64  # editor images sent ahead of their event and not yet read, all visitors together
# An absolute path (POSIX, home-relative or a Windows drive) inside a message; not "a/b", not a URL.
_PATH = re.compile(r"(?<![\w.:~/\\-])(?:~|[A-Za-z]:)?[/\\][^\s'\"`<>|:,;()]*")


def number(value: Any, name: str, allowed: Range | None = None, *, integer: bool = False) -> float:
    """A finite number (inside ``allowed`` when given), or a message that names the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name} must be a number, got {_short(value)}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {value}")
    if integer and value != int(value):
        raise SettingsError(f"{name} must be a whole number, got {value:g}")
    if allowed is not None:
        allowed.check(name, value)
    return int(value) if integer else float(value)


def text(value: Any, name: str, *, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """A string (``None`` counts as empty) of at most ``max_chars`` characters."""
    return "" if value is None else checked_text(value, name, max_chars=max_chars)


def uploaded_photos(value: Any) -> tuple[str, ...]:
    """The Swap tab's photos of the person: a list of at most MAX_IDENTITY_PHOTOS image files, each refused
    from its header before anything decodes it."""
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SettingsError("photos of the person must be a list of image files")
    if len(value) > MAX_IDENTITY_PHOTOS:
        raise SettingsError(f"{len(value)} photos of the person were given; at most {MAX_IDENTITY_PHOTOS} are used")
    for path in value:
        check_header(path, name=Path(path).name)
    return tuple(value)


def public_message(message: str) -> str:
    """``message`` with every absolute server path shortened to its last part (a file or folder name)."""
    return _PATH.sub(lambda match: _last_part(match.group(0)), message)


def public_record(value: Any) -> Any:
    """A result record as the page and the API may show it: no file paths of the server."""
    if isinstance(value, dict):
        return {key: public_record(item) for key, item in value.items() if key != "lora_path"}
    if isinstance(value, list):
        return [public_record(item) for item in value]
    return public_message(value) if isinstance(value, str) else value


def _last_part(path: str) -> str:
    parts = [part for part in re.split(r"[/\\]", path) if part]
    return parts[-1] if parts else path


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:40] + "..."


def safe_editor(editor: gr.ImageEditor) -> gr.ImageEditor:
    """Make ``editor`` read each image's header before Gradio decodes it; returns the same component.

    Gradio decodes an editor value (background, layers, composite) into full-size images before any
    handler runs, so a 200 KB PNG declaring 15000x15000 pixels would take gigabytes first. Here each
    file is refused from its header, and the composite (which the app never reads) is not decoded.
    (Wrapping the instance, not subclassing: Gradio writes a .pyi file beside every Component subclass.)
    """
    decode = editor.preprocess

    def preprocess(payload: EditorData | None) -> Any:
        if payload is None:
            return None
        try:
            if payload.id is not None:  # sent as blobs, kept in memory by Gradio until now
                cached = editor.blob_storage.get(payload.id)
                if cached is not None:
                    _check_editor_images(cached.background, cached.layers or [], cached.composite)
                return decode(payload)
            _check_editor_images(payload.background, payload.layers or [], payload.composite)
        except BadImageError as err:
            raise gr.Error(public_message(str(err)), print_exception=False) from None
        return decode(payload.model_copy(update={"composite": None}))

    editor.preprocess = preprocess  # type: ignore[method-assign]
    _guard_blobs(editor)
    return editor


def _guard_blobs(editor: gr.ImageEditor) -> None:
    """Bound Gradio's ``accept_blobs`` route (``POST /gradio_api/component_server/``): the browser sends the
    editor's images there one by one, each kept in memory until the next event reads them.

    Gradio makes a list as long as the ``index`` asked for (381 MB for a 300-byte request at 5e7)
    and keeps every ``id`` it is sent. Here a layer index beyond the layers the app accepts, and an
    unknown kind, are refused; and only the newest :data:`MAX_EDITOR_UPLOADS` ids are kept.
    """
    from fastapi import HTTPException

    accept = editor.accept_blobs

    def accept_blobs(data: Any) -> Any:
        fields = getattr(data, "data", None) or {}
        kind, index = fields.get("type"), fields.get("index")
        if kind not in ("background", "layer", "composite"):
            raise HTTPException(status_code=400, detail="unknown kind of editor image")
        if kind == "layer" and index not in (None, "", "null"):
            text = str(index)
            if not text.isdigit() or int(text) >= MAX_EDITOR_LAYERS:
                log.warning("accept_blobs refused: layer index %s", text[:20])
                raise HTTPException(status_code=400, detail=f"at most {MAX_EDITOR_LAYERS} editor layers")
        result = accept(data)
        while len(editor.blob_storage) > MAX_EDITOR_UPLOADS:
            editor.blob_storage.pop(next(iter(editor.blob_storage)))  # the oldest first (dicts keep order)
        return result

    accept_blobs._is_server_fn = True  # type: ignore[attr-defined]  # what Gradio's route looks for
    editor.accept_blobs = accept_blobs  # type: ignore[method-assign]


def safe_number(component: gr.Number, name: str) -> gr.Number:
    """Make a ``gr.Number`` refuse NaN, infinity and values out of its range with a message that names the
    field; returns the same component.

    Gradio's own checks say "Value 1e+23 is greater than maximum value 4294967295." (which box?) and
    print a traceback; with ``precision=0`` it rounds first, and NaN fails there. This checks first,
    and logs one line.
    """
    convert = component.preprocess

    def refuse(message: str) -> gr.Error:
        log.warning("%s: %s", name, message)
        return gr.Error(message, print_exception=False)

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            if not math.isfinite(payload):
                raise refuse(f"{name} must be a finite number, got {payload}")
            if component.minimum is not None and payload < component.minimum:
                raise refuse(f"{name} must be at least {plain_number(component.minimum)}, got {plain_number(payload)}")
            if component.maximum is not None and payload > component.maximum:
                raise refuse(f"{name} must be at most {plain_number(component.maximum)}, got {plain_number(payload)}")
        return convert(payload)

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def max_rows(table: gr.Dataframe, limit: int) -> gr.Dataframe:
    """Make ``table`` refuse more than ``limit`` rows before Gradio converts them (10,000 rows took 17 minutes)."""
    convert = table.preprocess

    def preprocess(payload: Any) -> Any:
        rows = getattr(payload, "data", None)
        if isinstance(rows, list) and len(rows) > limit:
            raise gr.Error(f"the table has {len(rows)} rows; at most {limit} are accepted", print_exception=False)
        return convert(payload)

    table.preprocess = preprocess  # type: ignore[method-assign]
    return table


def safe_inputs(blocks: gr.Blocks) -> None:
    """Make every component of ``blocks`` answer a value it cannot read with one line, not a traceback.

    Gradio converts each input (a dropdown's choice, a table, a slider's number, an image file) before
    the handler runs, and a value no widget would send (``None`` for a slider, a string for a table, a
    choice not offered) fails there with a traceback in the log and a blank error on the page. Here
    such a failure becomes a ``gr.Error`` naming the field, and one log line.
    """
    for block in blocks.blocks.values():
        if isinstance(block, gr.components.Component) and not isinstance(block, gr.State):
            _guard_preprocess(block)
    _guard_inputs(blocks)


def _guard_inputs(blocks: gr.Blocks) -> None:
    """The same for what fails before or outside a component's own conversion: Gradio's checks of file
    data, and components Gradio rebuilt for a session (a dropdown whose choices a handler changed)."""
    preprocess_data = blocks.preprocess_data

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess_data(*args, **kwargs)
        except gr.Error as err:
            if not err.print_exception:
                raise
            message = public_message(str(err.message))
        except Exception as err:  # pydantic's ValidationError, Gradio's ComponentProcessingError, ...
            message = "an input of the wrong kind was sent: " + public_message(str(err).splitlines()[0])
        message = _clip(message)
        log.warning("input refused: %s", message)
        raise gr.Error(message, print_exception=False)

    blocks.preprocess_data = guarded  # type: ignore[method-assign]


def _clip(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def _guard_preprocess(component: gr.components.Component) -> None:
    convert = component.preprocess
    field = getattr(component, "label", None) or type(component).__name__

    def preprocess(payload: Any) -> Any:
        try:
            return convert(payload)
        except gr.Error as err:
            if not err.print_exception:
                raise
            message = f"{field}: {public_message(str(err.message))}"
        except RecursionError:
            message = f"{field}: the value is nested too deeply"
        except Exception as err:  # Gradio's conversions fail in many types on values no widget sends
            message = f"{field}: this value cannot be used ({type(err).__name__})"
        message = _clip(message)
        log.warning("input refused: %s", message)
        raise gr.Error(message, print_exception=False)

    component.preprocess = preprocess  # type: ignore[method-assign]


def _check_editor_images(background: Any, layers: list[Any], composite: Any) -> None:
    if len(layers) > MAX_EDITOR_LAYERS:
        raise BadImageError(f"target photo: {len(layers)} layers were sent; at most {MAX_EDITOR_LAYERS} are accepted")
    limit = MAX_PIXELS
    if background is not None:
        width, height = check_header(_source(background), name="target photo")
        limit = width * height
    for index, layer in enumerate([*layers, composite]):
        if layer is not None:
            width, height = check_header(_source(layer), name=f"mask layer {index + 1}", max_pixels=MAX_PIXELS)
            if width * height > limit:
                raise BadImageError(f"mask layer {index + 1}: {width}x{height} is larger than the photo")


def _source(item: Any) -> Any:
    """A file path (FileData) or the bytes of a blob."""
    return bytes(item) if isinstance(item, (bytes, bytearray)) else item.path
