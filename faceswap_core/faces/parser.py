"""A learned face parser: what around a face is hair, a hand, clothing or an accessory, not face skin.

MediaPipe's multiclass selfie segmenter (Apache-2.0; 6 classes: background, hair, body skin, face skin,
clothes, others such as glasses) labels each pixel of the crop around a face; what it does not call face
skin is one more occluder source, combined with the hands and objects of ``occlusion.py`` by maximum
(the mask by minimum). Off unless the server names one (``--face-parser``): the model is not in the
``mediapipe`` wheel, so ``selfie-multiclass`` downloads it (16 MB) on first use into the cache folder;
a path uses a local ``.tflite`` file. It runs through MediaPipe's own ``ImageSegmenter`` (the model's
metadata carries its input scaling and softmax), so any segmenter with those six classes fits.
"""

from __future__ import annotations

import functools
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from faceswap_core.errors import SettingsError

SELFIE_MULTICLASS = "selfie-multiclass"
SELFIE_MULTICLASS_URL = (
    "https://storage.googleapis.com/mediapipe-models/image_segmenter/selfie_multiclass_256x256/float32/latest/"
    "selfie_multiclass_256x256.tflite"
)
CLASSES = ("background", "hair", "body skin", "face skin", "clothes", "others")
FACE_SKIN = CLASSES.index("face skin")
BODY_SKIN = CLASSES.index("body skin")
CACHE_ENV = "FACESWAP_CACHE"
MAX_MODEL_BYTES = 64 * 1024 * 1024


class FaceParser:
    """One segmenter, built once and run under a lock (a MediaPipe graph is not thread-safe)."""

    def __init__(self, source: str, model: bytes) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            output_confidence_masks=True,
            output_category_mask=False,
        )
        try:
            self._segmenter: Any = vision.ImageSegmenter.create_from_options(options)
        except (RuntimeError, ValueError) as error:
            raise SettingsError(
                f"face parser {source!r} is not an image segmenter MediaPipe can run: {error}"
            ) from None
        self.source = source
        self._lock = threading.Lock()

    def not_face(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability that a pixel is not face skin, probability that it is a hand or other body skin)."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop))
        with self._lock:
            masks = self._segmenter.segment(image).confidence_masks
        if len(masks) != len(CLASSES):
            raise SettingsError(
                f"face parser {self.source!r} gives {len(masks)} classes, not the {len(CLASSES)} of {CLASSES}"
            )
        face = np.array(masks[FACE_SKIN].numpy_view(), dtype=np.float32)
        body = np.array(masks[BODY_SKIN].numpy_view(), dtype=np.float32)
        return 1.0 - face, body


@functools.lru_cache(maxsize=4)
def load_parser(source: str) -> FaceParser:
    """The parser of ``source``: ``selfie-multiclass`` (downloaded once), a URL, or a local ``.tflite`` file."""
    if source == SELFIE_MULTICLASS:
        return FaceParser(source, _read(_download(SELFIE_MULTICLASS_URL)))
    if source.startswith(("https://", "http://")):
        return FaceParser(source, _read(_download(source)))
    return FaceParser(source, _read(Path(source)))


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "faceswap")


def _download(url: str) -> Path:
    """``url``'s file in the cache folder, fetched on first use (whole or not at all)."""
    target = cache_folder() / "face-parser" / url.rstrip("/").rsplit("/", 1)[-1]
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:  # noqa: S310 (http(s) only)
            while chunk := response.read(1 << 20):
                if out.tell() + len(chunk) > MAX_MODEL_BYTES:
                    raise SettingsError(f"face parser at {url} is over {MAX_MODEL_BYTES >> 20} MB")
                out.write(chunk)
        partial.replace(target)
    except OSError as error:
        raise SettingsError(
            f"could not download the face parser from {url} ({error}); save it and pass its path to --face-parser"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _read(path: Path) -> bytes:
    """The file's bytes if it is a TFLite model (its identifier at bytes 4-8): a pickle or a zip is refused."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except OSError as error:
        raise SettingsError(f"face parser {str(path)!r}: {error.strerror or error}") from None
    if len(data) > MAX_MODEL_BYTES or data[4:8] != b"TFL3":
        raise SettingsError(f"face parser {str(path)!r} is not a TFLite model (.tflite)")
    return data


def parsed_occluders(parser: FaceParser, crop: np.ndarray, features: np.ndarray) -> np.ndarray:
    """255 where ``parser`` sees no face skin in ``crop``; not over eyes, brows and lips (``features``)
    unless a hand covers them: a parser may call them something else, and the landmarks know them."""
    not_face, body = parser.not_face(crop)  # MediaPipe returns them at the crop's size
    found = (not_face >= 0.5) & (~features | (body >= 0.5))
    return found.astype(np.uint8) * 255
