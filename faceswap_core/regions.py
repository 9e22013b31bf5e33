"""Face regions: where one face is repainted (full-size mask + square crop box) and the crop the model sees.

The engine, the strength search and the trainer's target samples all cut faces here, so a face is
always masked, boxed, squared and resized the same way. Several faces are several regions; the
engine repaints them one after another, each cut from the result of the one before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from faceswap_core.blend import Box, crop_square, square_crop_box
from faceswap_core.errors import MaskError

if TYPE_CHECKING:
    from faceswap_core.faces.detect import Face
    from faceswap_core.faces.parser import FaceParser
    from faceswap_core.settings import MaskSettings

OWNERSHIP_BAND = 0.06  # of a face's width: where two faces' painted areas meet, the later one fades in over this


@dataclass(frozen=True, eq=False)
class Region:
    """One area to repaint: its full-size mask (255 = replace), the square box the model sees, and its face."""

    mask: Image.Image
    box: Box
    face: Face | None = None
    face_index: int | None = None  # index among the detected faces (largest first), when known
    mask_source: str = "auto"  # "auto": made from the landmarks; "given": painted or passed in


def face_region(
    image_size: tuple[int, int],
    face: Face,
    *,
    face_index: int | None,
    padding: float,
    mask_settings: MaskSettings | None = None,
    image: Image.Image | None = None,
    parser: FaceParser | None = None,
) -> Region:
    """The automatic region of a detected face: its landmark mask and the padded square around it.

    With ``image`` and the occlusion switch on, hands and objects in front of the face are left out (and
    what ``parser`` does not call face skin).
    """
    from faceswap_core.faces.masks import face_mask
    from faceswap_core.settings import MaskSettings

    sizes = mask_settings or MaskSettings()
    sizes.validate()
    photo = image if sizes.occlusion else None
    mask = face_mask(image_size, face, grow=sizes.grow, feather=sizes.feather, image=photo, parser=parser)
    return mask_region(mask, padding=padding, face=face, face_index=face_index, mask_source="auto")


def mask_region(
    mask: Image.Image,
    *,
    padding: float,
    face: Face | None = None,
    face_index: int | None = None,
    mask_source: str = "given",
) -> Region:
    """The region of a full-size mask: the padded square around what it covers (:class:`MaskError` if empty)."""
    from faceswap_core.faces.masks import mask_box

    box = square_crop_box(mask_box(mask), padding, mask.size)
    return Region(mask, box, face, face_index, mask_source)


def cut(image: Image.Image, region: Region, size: int) -> tuple[Image.Image, Image.Image]:
    """The square crop of ``image`` and of the region's mask, resized to ``size`` (the model's native side).

    A small face is upscaled here, so a 40 px face gets the same detail as a selfie.
    """
    crop = crop_square(image, region.box).resize((size, size), Image.LANCZOS)
    crop_mask = crop_square(region.mask, region.box, fill_mode="constant").resize((size, size), Image.BILINEAR)
    return crop, crop_mask


def split_mask(mask: Image.Image, faces: list[Face]) -> list[Image.Image]:
    """Share one painted mask among several faces: each painted pixel goes to the face nearest to it.

    Where two faces' areas meet, the farther face's share fades out over a band instead of stopping
    at a hard line. Repainted one after the other, every painted pixel is then fully replaced (its
    nearest face has weight 1) and the later face blends softly into the earlier one: no seam.
    Distances are measured from each face's edge (centre minus half its width), in two passes over
    the painted box, so two dozen faces cost a few arrays of memory, not one per face.
    """
    if not faces:
        raise MaskError("no face to give the painted mask to")
    if len(faces) == 1:
        return [mask.convert("L")]
    values = np.asarray(mask.convert("L"))
    painted = values > 0
    if not painted.any():
        raise MaskError("the mask is empty: paint over the faces to replace, or use the automatic face mask")
    rows, cols = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    ys, xs = np.ogrid[y0:y1, x0:x1]
    window = values[y0:y1, x0:x1].astype(np.float32)

    def distance(face: Face) -> np.ndarray:
        cx, cy = face.center
        return np.maximum(np.hypot(xs - cx, ys - cy) - face.width / 2, 0.0).astype(np.float32)

    nearest = distance(faces[0])
    for face in faces[1:]:
        np.minimum(nearest, distance(face), out=nearest)
    shares = []
    for face in faces:
        band = max(2.0, OWNERSHIP_BAND * face.width)
        weight = np.clip(1.0 - (distance(face) - nearest) / band, 0.0, 1.0)
        share = np.zeros(values.shape, dtype=np.uint8)
        share[y0:y1, x0:x1] = np.rint(window * weight).astype(np.uint8)
        shares.append(Image.fromarray(share, mode="L"))
    return shares
