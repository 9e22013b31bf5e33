"""Crop, colour match and paste-back: the pixel guarantees of a swap, without a model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceswap_core.blend import crop_square, match_colors, paste_back, square_crop_box


@pytest.mark.parametrize(
    ("box", "padding", "size"),
    [
        ((40, 30, 80, 90), 0.6, (203, 157)),
        ((0, 0, 20, 20), 0.5, (203, 157)),  # at the corner: shifted inside
        ((150, 120, 203, 157), 1.0, (203, 157)),  # at the other corner
        ((10, 10, 190, 150), 0.6, (203, 157)),  # larger than the image: centred, reaching outside
    ],
)
def test_square_crop_box_covers_the_mask_and_stays_inside_when_it_can(
    box: tuple[int, int, int, int], padding: float, size: tuple[int, int]
) -> None:
    x0, y0, x1, y1 = square_crop_box(box, padding, size)
    assert x1 - x0 == y1 - y0 >= max(box[2] - box[0], box[3] - box[1])
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    if x1 - x0 <= min(size):
        assert x0 >= 0 and y0 >= 0 and x1 <= size[0] and y1 <= size[1]


def test_crop_outside_the_image_is_reflected() -> None:
    image = Image.fromarray(np.arange(40 * 30 * 3, dtype=np.uint32).reshape(30, 40, 3).astype(np.uint8))
    crop = np.asarray(crop_square(image, (-5, -5, 45, 45)))
    assert crop.shape == (50, 50, 3)
    assert np.array_equal(crop[5:35, 5:45], np.asarray(image))
    assert np.array_equal(crop[4, 5:45], np.asarray(image)[1])  # reflection about the first row


def test_paste_back_changes_only_masked_pixels_and_blends_the_feather() -> None:
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (157, 203, 3), dtype=np.uint8))
    mask = np.zeros((157, 203), dtype=np.uint8)
    mask[40:100, 50:120] = 255
    mask[40:100, 120:130] = 128
    box = (30, 20, 150, 140)
    generated = Image.new("RGB", (64, 64), (255, 0, 0))
    out = np.asarray(paste_back(original, generated, Image.fromarray(mask), box))
    before = np.asarray(original)
    assert out.shape == before.shape
    assert np.array_equal(out[mask == 0], before[mask == 0])
    assert (out[mask == 255] == (255, 0, 0)).all()
    half = before[mask == 128].astype(float)
    assert np.abs(out[mask == 128] - (half + ((255, 0, 0) - half) * 128 / 255)).max() <= 1


def test_match_colors_removes_a_colour_cast_along_the_edge() -> None:
    rng = np.random.default_rng(1)
    original = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    tinted = np.clip(original.astype(int) + (40, -20, 10), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    matched = match_colors(tinted, original, mask)
    error_before = np.abs(tinted.astype(int) - original).mean()
    assert np.abs(matched.astype(int) - original).mean() < error_before / 3
