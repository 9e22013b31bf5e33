"""Cropping the face region, colour matching and pasting it back: the pixel work around the diffusion call.

Why crop ourselves instead of diffusers' ``padding_mask_crop``: a 55 px face must be upscaled to the
model's native 1024 px to get detail, and the paste-back must leave every pixel where the mask is 0
exactly as it was. Both are easy to guarantee here and hard to guarantee through the pipeline.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def square_crop_box(mask_box: tuple[float, float, float, float], padding: float, image_size: tuple[int, int]) -> Box:
    """A square around the mask box, grown by ``padding`` x its size on each side, kept inside the image.

    The square is shifted (not shrunk) to fit; only when it is larger than the image does it reach
    outside, and :func:`crop_square` fills that part by reflection.
    """
    x0, y0, x1, y1 = mask_box
    width, height = image_size
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * padding)
    side = max(8, math.ceil(side))
    left = round((x0 + x1) / 2 - side / 2)
    top = round((y0 + y1) / 2 - side / 2)
    left = _fit(left, side, width)
    top = _fit(top, side, height)
    return left, top, left + side, top + side


def _fit(start: int, side: int, limit: int) -> int:
    """Shift a span inside [0, limit); a span longer than the limit is centred on it."""
    if side >= limit:
        return (limit - side) // 2
    return min(max(start, 0), limit - side)


def crop_square(image: Image.Image, box: Box, *, fill_mode: str = "reflect") -> Image.Image:
    """Crop ``box`` (which may reach outside the image) from an RGB or L image, padding by reflection."""
    array = np.asarray(image)
    left, top, right, bottom = box
    height, width = array.shape[:2]
    pad_before = (max(0, -top), max(0, -left))
    pad_after = (max(0, bottom - height), max(0, right - width))
    if any(pad_before) or any(pad_after):
        pads = [(pad_before[0], pad_after[0]), (pad_before[1], pad_after[1])] + [(0, 0)] * (array.ndim - 2)
        array = np.pad(array, pads, mode=fill_mode) if fill_mode != "constant" else np.pad(array, pads)
        left, right = left + pad_before[1], right + pad_before[1]
        top, bottom = top + pad_before[0], bottom + pad_before[0]
    return Image.fromarray(np.ascontiguousarray(array[top:bottom, left:right]))


def match_colors(generated: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Match the generated crop's colour statistics to the original's along the mask edge, in LAB.

    The seam is where a colour cast shows, so mean and spread are measured on the edge ring of the
    mask (both images share it) and the correction is applied to the whole generated crop.
    """
    import cv2

    ring = _edge_ring(mask)
    if ring.sum() < 16:
        return generated
    gen_lab = cv2.cvtColor(generated.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    orig_lab = cv2.cvtColor(original.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    gen_ring, orig_ring = gen_lab[ring], orig_lab[ring]
    gen_mean, gen_std = gen_ring.mean(axis=0), gen_ring.std(axis=0) + 1e-3
    orig_mean, orig_std = orig_ring.mean(axis=0), orig_ring.std(axis=0) + 1e-3
    gain = np.clip(orig_std / gen_std, 0.5, 2.0)
    matched = (gen_lab - gen_mean) * gain + orig_mean
    matched[..., 0] = np.clip(matched[..., 0], 0.0, 100.0)
    rgb = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _edge_ring(mask: np.ndarray) -> np.ndarray:
    """Pixels of the feathered edge; for a hard mask, a band a few % of the crop wide around its outline."""
    import cv2

    soft = (mask > 10) & (mask < 245)
    if soft.sum() >= 0.02 * mask.size:
        return soft
    hard = (mask >= 128).astype(np.uint8)
    width = max(2, round(0.04 * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return cv2.dilate(hard, kernel) != cv2.erode(hard, kernel)


def paste_back(original: Image.Image, generated: Image.Image, mask: Image.Image, box: Box) -> Image.Image:
    """Composite ``generated`` (the crop at ``box``, any size) into ``original`` through ``mask``.

    out = original * (1 - m) + generated * m, computed only where m > 0: every pixel whose mask is 0
    is copied unchanged, and the result has the original's size.
    """
    left, top, right, bottom = box
    side = right - left
    patch = np.asarray(generated.convert("RGB").resize((side, side), Image.LANCZOS), dtype=np.float32)
    out = np.array(original, dtype=np.uint8)
    height, width = out.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    weights = np.asarray(mask, dtype=np.float32)[y0:y1, x0:x1, None] / 255.0
    region = out[y0:y1, x0:x1].astype(np.float32)
    patch = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    blended = np.rint(region + (patch - region) * weights)
    touched = weights[..., 0] > 0
    out[y0:y1, x0:x1][touched] = np.clip(blended, 0, 255).astype(np.uint8)[touched]
    return Image.fromarray(out)
