"""Occluders with a known alpha, placed in front of a face by its landmarks: the answer key of the
occlusion benchmark and tests.

Sources (all may be shipped): the cup is cut out of scikit-image's ``data.coffee()`` (CC0, a photo
courtesy of Pikolo Espresso Bar); the photographed hand (``data/hand_thumb_down.png``) is cut out of a
HaGRID photo (CC BY-SA 4.0, see ``data/README.md``); the drawn hand, the microphone and the glasses are
drawn here with shading and texture. Each occluder is RGBA; alpha >= 128 is what counts as covering
the face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from faceswap_core.faces.detect import Face

KINDS = ("hand", "real hand", "cup", "microphone", "glasses")
HAND_PHOTO = Path(__file__).resolve().parent / "data" / "hand_thumb_down.png"
SKIN = (198, 140, 112)  # a hand's base tone (RGB), shaded and textured below
LENS_ALPHA = 60  # the glasses' tinted lenses: the face shows through, neither occluder nor bare face


def cup() -> Image.Image:
    """The espresso cup of ``skimage.data.coffee()`` without its saucer, by a hand-placed outline."""
    from skimage import data

    pixels = data.coffee()
    alpha = np.zeros(pixels.shape[:2], dtype=np.uint8)
    cv2.ellipse(alpha, (290, 112), (119, 95), 0, 0, 360, 255, -1)  # the rim
    cv2.fillPoly(alpha, [np.array([(174, 120), (408, 120), (372, 262), (322, 282), (246, 282), (204, 262)])], 255)
    cv2.ellipse(alpha, (228, 266), (33, 38), 0, 0, 360, 255, -1)  # the handle
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)
    return Image.fromarray(np.dstack([pixels, alpha])).crop((160, 10, 420, 310))


def hand(size: int = 400, *, seed: int = 0) -> Image.Image:
    """An open left hand, fingers up: palm and fingers as shaded capsules with skin texture."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((size, size), dtype=np.uint8)
    s = size / 400
    cv2.ellipse(alpha, (int(200 * s), int(280 * s)), (int(85 * s), int(100 * s)), 0, 0, 360, 255, -1)
    fingers = [((130, 215), (112, 75), 20), ((175, 200), (170, 45), 21), ((220, 200), (228, 52), 21),
               ((262, 215), (282, 90), 19), ((120, 300), (55, 215), 22)]  # fmt: skip
    shade = np.zeros((size, size), dtype=np.float32)
    for (x0, y0), (x1, y1), r in fingers:
        cv2.line(alpha, (int(x0 * s), int(y0 * s)), (int(x1 * s), int(y1 * s)), 255, int(2 * r * s))
        cv2.circle(alpha, (int(x1 * s), int(y1 * s)), int(r * s), 255, -1)
        cv2.line(shade, (int(x0 * s), int(y0 * s)), (int(x1 * s), int(y1 * s)), 1.0, max(int(0.8 * r * s), 1))
    inside = cv2.distanceTransform((alpha > 0).astype(np.uint8), cv2.DIST_L2, 5)
    light = np.clip(inside / (18 * s), 0, 1) ** 0.5 * 0.35 + 0.65 + 0.1 * cv2.GaussianBlur(shade, (0, 0), 4 * s)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5) * 6
    rgb = np.clip(np.array(SKIN, np.float32) * light[..., None] + texture[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, cv2.GaussianBlur(alpha, (0, 0), 0.8)]))


def microphone(size: int = 400) -> Image.Image:
    """A hand-held microphone: a grey mesh ball on a black handle, seen from the front."""
    rgb = np.zeros((size, size, 3), dtype=np.uint8)
    alpha = np.zeros((size, size), dtype=np.uint8)
    s = size / 400
    centre, radius = (int(200 * s), int(110 * s)), int(80 * s)
    cv2.fillPoly(alpha, [(np.array([(175, 150), (225, 150), (212, 400), (188, 400)]) * s).astype(np.int32)], 255)
    cv2.circle(alpha, centre, radius, 255, -1)
    rgb[alpha > 0] = (28, 28, 30)
    ball = np.zeros((size, size), dtype=np.uint8)
    cv2.circle(ball, centre, radius, 255, -1)
    grid = np.full((size, size), 150, dtype=np.uint8)
    step = max(int(9 * s), 3)
    grid[::step, :] = 70
    grid[:, ::step] = 70
    rgb[ball > 0] = np.repeat(grid[ball > 0, None], 3, axis=1)
    return Image.fromarray(np.dstack([rgb, alpha]))


def glasses(width: int = 400) -> Image.Image:
    """Black frames with lightly tinted lenses (``LENS_ALPHA``: the eyes show through and stay in the mask)."""
    height = width // 3
    s = width / 400
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    alpha = np.zeros((height, width), dtype=np.uint8)
    thick = max(int(9 * s), 2)
    for cx in (105, 295):
        box = (int((cx - 82) * s), int(20 * s), int((cx + 82) * s), int(115 * s))
        cv2.rectangle(alpha, box[:2], box[2:], LENS_ALPHA, -1)
        cv2.rectangle(alpha, box[:2], box[2:], 255, thick)
    cv2.line(alpha, (int(187 * s), int(45 * s)), (int(213 * s), int(45 * s)), 255, thick)
    rgb[alpha == LENS_ALPHA] = (90, 100, 110)
    rgb[alpha == 255] = (15, 15, 15)
    return Image.fromarray(np.dstack([rgb, alpha]))


def place(kind: str, face: Face) -> tuple[Image.Image, tuple[int, int]]:
    """The occluder scaled to ``face`` and the top-left corner where it goes (over the cheek, mouth, eyes)."""
    width = max(face.jaw_width, face.width)
    points = face.landmarks
    if kind == "glasses":
        image = glasses(max(int(1.05 * width), 8))
        centre = (points[36:48].mean(axis=0) + (0, 0.02 * width)).astype(int)
    elif kind == "hand":
        image = hand(max(int(0.75 * width), 8))
        centre = ((points[3] + points[31]) / 2 + (0, 0.25 * width)).astype(int)  # palm on the image-left cheek
    elif kind == "real hand":
        image = Image.open(HAND_PHOTO)  # a fist, thumb down, cut off by its photo's left edge
        image = image.resize((max(int(0.6 * width), 8), max(int(0.6 * width * image.height / image.width), 8)))
        centre = ((points[3] + points[31]) / 2 + (-0.1 * width, 0.1 * width)).astype(int)  # fingers on the cheek
    elif kind == "cup":
        image = cup()
        image = image.resize((max(int(0.6 * width), 8), max(int(0.6 * width * image.height / image.width), 8)))
        centre = (points[57] + (0.05 * width, 0.12 * width)).astype(int)  # raised to the mouth
    elif kind == "microphone":
        image = microphone(max(int(0.6 * width), 8))
        centre = (points[57] + (0.1 * width, 0.22 * width)).astype(int)  # the ball at the chin
    else:
        raise ValueError(f"occluder must be one of {', '.join(KINDS)}, got {kind!r}")
    return image, (int(centre[0] - image.width / 2), int(centre[1] - image.height / 2))


def composite(photo: Image.Image, kind: str, face: Face) -> tuple[Image.Image, np.ndarray]:
    """``photo`` with the occluder in front of ``face``, and the occluder's alpha at photo size (0-255)."""
    occluder, corner = place(kind, face)
    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    layer.paste(occluder, corner)
    result = Image.alpha_composite(photo.convert("RGBA"), layer).convert("RGB")
    return result, np.asarray(layer.getchannel("A"))
