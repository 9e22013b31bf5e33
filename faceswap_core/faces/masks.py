"""Face masks: 8-bit grayscale, the size of the image, 255 where the face is to be repainted.

The automatic mask is the region a person would paint to replace a face: the hull of the jaw line
and of the brows lifted a little toward the forehead, so it covers brows, eyes, nose, mouth, cheeks
and chin but leaves hair, hats and the neck alone. By default it is not grown and only lightly
feathered, so its 50 % line is that outline: hand-painted masks lie inside anything larger (see
settings). Grow and feather default to fractions of the face width, so the same settings suit a
selfie and a full-body shot. Hand-drawn masks come in many forms (strokes on a transparent layer,
white on black, any mode); :func:`normalize_mask` turns them all into the same form. Given the
photo, the automatic mask also leaves out hands and objects in front of the face (faces/occlusion.py):
the sources are combined by element-wise minimum (:func:`combine_masks`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from faceswap_core.errors import MaskError
from faceswap_core.faces.detect import BROWS, JAW, Face
from faceswap_core.faces.parser import FaceParser
from faceswap_core.images import ImageInput
from faceswap_core.settings import MASK_BROW_RAISE, MASK_FEATHER_FRACTION, MASK_GROW_FRACTION, MAX_PIXELS


def face_outline(face: Face, *, brow_raise: float = MASK_BROW_RAISE) -> np.ndarray:
    """Polygon (N, 2) of the face region: jaw line plus brows lifted along the face's own up direction.

    "Up" is perpendicular to the eye line, so a tilted head gets a tilted mask.
    """
    points = face.landmarks
    eye_line = face.right_eye - face.left_eye
    up = np.array([eye_line[1], -eye_line[0]]) / max(np.linalg.norm(eye_line), 1e-6)
    eyes_mid = (face.left_eye + face.right_eye) / 2
    if np.dot(points[8] - eyes_mid, up) > 0:  # the chin must be "down"; flip for upside-down faces
        up = -up
    brows = points[BROWS]
    brow_height = max(float(np.mean((brows - eyes_mid) @ up)), 0.0)
    lifted = brows + up * brow_height * brow_raise
    hull = cv2.convexHull(np.concatenate([points[JAW], lifted]).astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)


def mask_scale(face: Face) -> float:
    """The face width in pixels that default grow and feather are fractions of.

    The larger of the ear-to-ear jaw width and the detector's box width, so a face in profile (short
    jaw line) still gets a feather fit for its size.
    """
    return max(face.jaw_width, face.width)


def face_mask(
    size: tuple[int, int],
    face: Face,
    *,
    grow: float | None = None,
    feather: float | None = None,
    image: ImageInput | None = None,
    parser: FaceParser | None = None,
) -> Image.Image:
    """Automatic mask for ``face`` in an image of ``size`` (width, height).

    ``grow`` (negative shrinks) and ``feather`` are in pixels; ``None`` scales them with the face width.
    With ``image`` (the photo, of ``size``), hands and objects in front of the face are cut out, and with
    ``parser`` too what a learned face parser does not call face skin.
    """
    face_width = mask_scale(face)
    grow = MASK_GROW_FRACTION * face_width if grow is None else float(grow)
    feather = MASK_FEATHER_FRACTION * face_width if feather is None else float(feather)
    outline = face_outline(face)
    # Work in a crop around the face so a 12 MP image costs no more than a small one. The crop is not
    # clipped to the image, so the feather does not fade where the face meets the image border.
    margin = int(np.ceil(max(grow, 0.0) + 3 * feather + 4))
    x0 = int(np.floor(outline[:, 0].min())) - margin
    y0 = int(np.floor(outline[:, 1].min())) - margin
    x1 = int(np.ceil(outline[:, 0].max())) + margin + 1
    y1 = int(np.ceil(outline[:, 1].max())) + margin + 1
    crop = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 8  # sub-pixel precision for the polygon
    polygon = np.round((outline - (x0, y0)) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(crop, [polygon], 255, lineType=cv2.LINE_8, shift=shift)
    crop = _feather(_grow(crop, grow), feather)
    width, height = size
    full = np.zeros((height, width), dtype=np.uint8)
    left, top, right, bottom = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if right > left and bottom > top:
        full[top:bottom, left:right] = crop[top - y0 : bottom - y0, left - x0 : right - x0]
    landmark_mask = Image.fromarray(full, mode="L")
    if image is None:
        return landmark_mask
    from faceswap_core.faces.occlusion import occluder_mask

    # A quarter of the feather beside an occluder: its edge is a real edge in the photo, and a seam there
    # is hidden; a wider one repaints a band of visible face around a thin occluder (a glasses frame).
    return combine_masks(landmark_mask, visible_mask(occluder_mask(image, face, outline, parser), feather / 4))


def visible_mask(occluders: Image.Image, feather: float) -> Image.Image:
    """255 where nothing covers the face; the feather fades in beside the occluders, never over them."""
    values = np.asarray(occluders.convert("L"))
    if not values.any():
        return Image.new("L", occluders.size, 255)
    covered = _grow(values, feather) if feather > 0 else values  # the 50 % line one feather out
    visible = 255 - _feather(covered, feather)
    visible[values >= 128] = 0  # the blur's tail must not reach the occluder: it comes back exactly
    return Image.fromarray(visible, mode="L")


def combine_masks(*masks: Image.Image) -> Image.Image:
    """Masks from several sources as one: the element-wise minimum, so each can only take pixels away."""
    values = [np.asarray(mask.convert("L")) for mask in masks]
    return Image.fromarray(np.minimum.reduce(values), mode="L")


def _grow(mask: np.ndarray, px: float) -> np.ndarray:
    """Grow (or shrink, when negative) by ``px`` using a Euclidean distance transform: round corners."""
    if abs(px) < 0.5:
        return mask
    binary = mask >= 128
    if px > 0:
        distance = cv2.distanceTransform((~binary).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return np.where(distance <= px, 255, 0).astype(np.uint8)
    distance = cv2.distanceTransform(binary.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.where(distance > -px, 255, 0).astype(np.uint8)


def _feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``radius`` (the same meaning as Pillow's blur radius)."""
    if radius <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=float(radius), borderType=cv2.BORDER_CONSTANT)


def grow_mask(mask: Image.Image, px: float) -> Image.Image:
    """A mask grown by ``px`` pixels (shrunk when negative); the result is hard-edged (0 or 255)."""
    return Image.fromarray(_grow(np.asarray(mask.convert("L")), px), mode="L")


def feather_mask(mask: Image.Image, radius: float) -> Image.Image:
    """Soften the mask's edge with a Gaussian of standard deviation ``radius`` pixels."""
    return Image.fromarray(_feather(np.asarray(mask.convert("L")), radius), mode="L")


def mask_box(mask: Image.Image, threshold: int = 0) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) of the pixels above ``threshold``; :class:`MaskError` when there are none."""
    values = np.asarray(mask.convert("L"))
    rows = np.flatnonzero((values > threshold).any(axis=1))
    cols = np.flatnonzero((values > threshold).any(axis=0))
    if rows.size == 0:
        raise MaskError("the mask is empty: paint over the face to replace, or use the automatic face mask")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def normalize_mask(mask: ImageInput, size: tuple[int, int], *, name: str = "mask") -> Image.Image:
    """Any hand-drawn mask as 8-bit 'L' of ``size``: 255 = repaint.

    Strokes on a transparent layer use the alpha channel; opaque images (white on black, grayscale)
    use luminance. Arrays may be bool, float in [0, 1] or 8/16-bit integers.
    """
    if isinstance(mask, np.ndarray):
        values = _array_to_l(mask, name)
    else:
        image = mask if isinstance(mask, Image.Image) else _open_mask(mask, name)
        values = _image_to_l(image, name)
    found = (values.shape[1], values.shape[0])
    if found != tuple(size):
        raise MaskError(
            f"{name} is {found[0]}x{found[1]} but the image is {size[0]}x{size[1]}; draw the mask on the same image"
        )
    return Image.fromarray(values, mode="L")


def _open_mask(source: str | os.PathLike | bytes, name: str) -> Image.Image:
    try:
        if isinstance(source, bytes):
            image = Image.open(io.BytesIO(source))
        else:
            path = Path(source)
            if not path.is_file():
                raise MaskError(f"{name}: no such file: {path}")
            image = Image.open(path)
        if image.width * image.height > MAX_PIXELS:
            raise MaskError(f"{name} is {image.width}x{image.height}, over the limit of {MAX_PIXELS / 1e6:g} MP")
        image.load()
    except UnidentifiedImageError:
        raise MaskError(f"{name}: not an image file") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise MaskError(f"{name}: cannot read the mask ({str(err).splitlines()[0] if str(err) else err!r})") from None
    return image


def _image_to_l(image: Image.Image, name: str) -> np.ndarray:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:  # a transparent layer: what was painted is what is opaque
            return np.ascontiguousarray(alpha)
        image = image.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _array_to_l(np.asarray(image), name)
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    try:
        return np.asarray(image.convert("L"))
    except (ValueError, OSError):
        raise MaskError(f"{name}: cannot use an image of mode {image.mode} as a mask") from None


def _array_to_l(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        if array.dtype != np.uint8:
            array = _array_to_l(array.reshape(array.shape[0], -1), name).reshape(array.shape)
        return _image_to_l(Image.fromarray(np.ascontiguousarray(array)), name)
    if array.ndim != 2:
        raise MaskError(f"{name}: expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        top = 1.0 if np.nanmax(array, initial=0.0) <= 1.0 else 255.0
        return (np.clip(np.nan_to_num(array) / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        top = 65535 if array.max(initial=0) > 255 else 255
        return (np.clip(array.astype(np.int64), 0, top) * 255 // top).astype(np.uint8)
    raise MaskError(f"{name}: unsupported array type {array.dtype}")
