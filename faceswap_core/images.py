"""Loading and saving images: the one door every entry point uses.

Why one function: phone photos carry EXIF rotation, uploads come in every mode (palette, CMYK,
16-bit, alpha), and a tiny PNG can declare 40000x40000 pixels. Checking all of that in one place
means the CLI, the UI and the engine see the same upright 8-bit RGB image or the same clear error.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from faceswap_core.errors import BadImageError, first_line
from faceswap_core.files import atomic_path
from faceswap_core.settings import MAX_PIXELS, MIN_IMAGE_SIDE

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray
EXIF_ORIENTATION = 0x0112

# Pillow's own guard, process-wide (so also inside Gradio, which decodes uploads before the app sees
# them): Image.open raises DecompressionBombError from the header above 2 x MAX_IMAGE_PIXELS, so half
# our limit makes Pillow refuse exactly what we refuse. Between 1x and 2x it only warns; we check
# ourselves with a clearer message, so that warning is noise.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
ImageFile.LOAD_TRUNCATED_IMAGES = False


def describe(source: ImageInput, name: str | None = None) -> str:
    """A short name for messages: the file name, or what kind of object was given."""
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return "uploaded image"
    return "image"


def load_image(source: ImageInput, *, max_pixels: int = MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Return ``source`` as an upright 8-bit RGB image, or raise :class:`BadImageError`.

    The pixel limit is checked from the header, before the image is decoded into memory.
    """
    label = describe(source, name)
    if isinstance(source, np.ndarray):
        image = _from_array(source, label)
    elif isinstance(source, Image.Image):
        image = source
    else:
        image = _open(source, label, max_pixels)
    _check_size(image.size, label, max_pixels)
    if isinstance(source, (str, os.PathLike, bytes)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise BadImageError(f"{label}: the image is truncated or corrupt ({_reason(err)})") from None
    with contextlib.suppress(Exception), warnings.catch_warnings():  # a broken EXIF block must not lose the photo
        warnings.simplefilter("ignore")
        image = ImageOps.exif_transpose(image)
    return to_rgb(image, label)


def check_header(
    source: str | os.PathLike | bytes, *, max_pixels: int = MAX_PIXELS, name: str | None = None
) -> tuple[int, int]:
    """The (width, height) an image file declares, refused beyond ``max_pixels`` BEFORE anything is decoded.

    For images that arrive decoded by someone else (Gradio's components): call this on the file first.
    """
    label = describe(source, name)
    with _open(source, label, max_pixels) as image:
        _check_size(image.size, label, max_pixels)
        return image.size


def exif_orientation(source: str | os.PathLike) -> int:
    """The EXIF orientation tag of an image file (1 = upright, 3 = upside down, 6/8 = on its side)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as image:
                return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # unreadable files are reported by load_image
        return 1


def _open(source: str | os.PathLike | bytes, label: str, max_pixels: int) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise BadImageError(f"{label}: the file is empty")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise BadImageError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise BadImageError(f"{label}: the file is empty")
        stream = path
    try:
        with warnings.catch_warnings():  # corrupt EXIF or metadata chunks warn; the pixels may be fine
            warnings.simplefilter("ignore")
            image = Image.open(stream)
    except Image.DecompressionBombError as err:  # Pillow's own header check (see MAX_IMAGE_PIXELS above)
        found = re.search(r"\((\d+) pixels\)", str(err))
        declared = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too many pixels"
        raise BadImageError(
            f"{label}: the image declares {declared}, over the limit of {max_pixels / 1e6:g} MP; resize it first"
        ) from None
    except UnidentifiedImageError:
        raise BadImageError(f"{label}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImageError(f"{label}: cannot read the image ({_reason(err)})") from None
    return image


def _reason(err: BaseException) -> str:
    return first_line(err, 10_000)


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise BadImageError(
            f"{label}: the image is {width}x{height}; it must be at least {MIN_IMAGE_SIDE} px on each side"
        )
    if width * height > max_pixels:
        raise BadImageError(
            f"{label}: the image is {width}x{height} ({width * height / 1e6:.0f} MP), over the limit of "
            f"{max_pixels / 1e6:g} MP; resize it first"
        )


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise BadImageError(f"{label}: expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}")
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    else:
        raise BadImageError(f"{label}: unsupported array type {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def to_rgb(image: Image.Image, label: str = "image") -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent areas are laid on white, as viewers show them."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        return image.convert("RGB")  # an opaque photo (as the editor sends them): no compositing copies
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return image.convert("L").convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise BadImageError(f"{label}: cannot convert image mode {mode} to RGB ({_reason(err)})") from None


def to_array(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 array of an RGB image (a copy, safe to modify)."""
    return np.array(image.convert("RGB"), dtype=np.uint8)


def save_png(
    image: Image.Image, path: str | os.PathLike, metadata: dict[str, str] | None = None, *, compress_level: int = 6
) -> Path:
    """Save as PNG with text chunks (parameters), creating the folder; returns the path.

    ``compress_level`` 1 writes a 24 MP photo about 3x faster than the default 6, for about a third more bytes.
    """
    out = Path(path)
    with atomic_path(out) as scratch:  # a download or a registry scan never sees half a file
        scratch.write_bytes(png_bytes(image, metadata, compress_level=compress_level))
    return out


def png_bytes(image: Image.Image, metadata: dict[str, str] | None = None, *, compress_level: int = 6) -> bytes:
    """The PNG file :func:`save_png` writes, in memory: a worker on another machine sends it to the writer."""
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=compress_level)
    return buffer.getvalue()


def png_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks of a PNG (what :func:`save_png` wrote)."""
    with Image.open(path) as image:
        return dict(getattr(image, "text", {}) or {})
