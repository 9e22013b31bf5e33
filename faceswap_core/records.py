"""A result file carries its record: the request (public form) plus what happened, and the painted mask.

The PNG's ``parameters`` text is the record as JSON; ``mask`` holds the request's own painted mask as
a base64 PNG, so ``replay`` can run a result made in the app, whose mask exists nowhere else.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from faceswap_core.engine import SwapResult
from faceswap_core.errors import SettingsError
from faceswap_core.images import load_image, png_metadata, save_png
from faceswap_core.requests import SwapRequest, parse_json, pixel_hash


def result_metadata(record: dict[str, Any], painted: Image.Image | None) -> dict[str, str]:
    """The PNG text chunks of a result: its record, and the painted mask when the request had one."""
    metadata = {"parameters": json.dumps(record)}
    if painted is not None:
        buffer = io.BytesIO()
        painted.save(buffer, format="PNG", optimize=True)
        metadata["mask"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return metadata


def save_result(
    result: SwapResult, path: str | os.PathLike, record: dict[str, Any] | None = None, *, compress_level: int = 6
) -> Path:
    """Write the result PNG with its record (``record`` overrides the result's own, e.g. its public form).

    ``compress_level`` 1 is for a page waiting on the file (see :func:`save_png`); the pixels are the same.
    """
    metadata = result_metadata(result.record if record is None else record, result.painted)
    return save_png(result.image, path, metadata, compress_level=compress_level)


def read_result(path: str | os.PathLike) -> tuple[dict[str, Any], Image.Image | None]:
    """The record and the painted mask (or None) stored in a result PNG."""
    load_image(path, name="result")  # refuses a non-image or a bomb with the usual one-line message
    text = png_metadata(path)
    if "parameters" not in text:
        raise SettingsError(f"{Path(path).name}: no faceswap record in this PNG (was it made by faceswap?)")
    record = parse_json(text["parameters"], "the result's record")
    if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
        raise SettingsError(f"{Path(path).name}: its record holds no request (made by an older faceswap?)")
    painted = None
    if "mask" in text:
        try:
            painted = Image.open(io.BytesIO(base64.b64decode(text["mask"], validate=True)))
            painted.load()
        except (ValueError, OSError):
            raise SettingsError(f"{Path(path).name}: its stored mask is damaged") from None
    return record, painted


def replay_request(
    record: dict[str, Any],
    *,
    image: str | os.PathLike,
    painted: Image.Image | None = None,
    reference_face: str | os.PathLike | None = None,
    identity_photos: list[str] | None = None,
) -> SwapRequest:
    """The request a result was made from, with its files supplied again; each is checked against the
    content hash the record holds, so a replay never runs on the wrong photo without saying so."""
    public = record["request"]
    files: dict[str, Any] = {"image": str(image)}
    if public.get("mask") is not None:
        if painted is None:
            raise SettingsError("the record names a mask, but the result file holds none")
        files["mask"] = painted
    if public.get("reference_face") is not None:
        if reference_face is None:
            raise SettingsError("this result chose its face by a reference photo: give it with --reference-face")
        files["reference_face"] = str(reference_face)
    wanted = len(public.get("settings", {}).get("identity_photos") or [])
    if wanted:
        if not identity_photos or len(identity_photos) != wanted:
            raise SettingsError(f"this result used {wanted} photo(s) of the person: give them with --identity")
        files["identity_photos"] = [str(photo) for photo in identity_photos]
    for key in ("image", "mask", "reference_face"):
        recorded = (public.get(key) or {}).get("sha256")
        if key in files and recorded:
            used = files[key] if isinstance(files[key], Image.Image) else load_image(files[key], name=key)
            if pixel_hash(used) != recorded:
                raise SettingsError(f"{key}: not the one this result was made from (its content differs)")
    return SwapRequest.from_dict(public, files=files)
