"""Aligned square face crops: eyes level, the eye midpoint and the eye distance fixed in every crop.

LoRA training learns a face best when every photo shows it at the same place, scale and angle. The
eye distance is the scale measure because it barely changes with expression or an open mouth.
Where the crop leaves the photo, the border is mirrored rather than filled with black, so the model
does not learn black bars.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from faceswap_core.faces.detect import Face
from faceswap_core.images import to_array
from faceswap_core.settings import PREPARE_EYE_DISTANCE, PREPARE_EYE_Y


def alignment_matrix(
    face: Face, size: int, *, eye_distance: float = PREPARE_EYE_DISTANCE, eye_y: float = PREPARE_EYE_Y
) -> np.ndarray:
    """2x3 affine matrix taking image pixels to crop pixels (rotation, uniform scale, translation).

    ``eye_distance`` and ``eye_y`` are fractions of ``size``: the training-crop defaults, or tighter.
    """
    left, right = face.left_eye, face.right_eye
    eye_line = right - left
    angle = float(np.arctan2(eye_line[1], eye_line[0]))
    scale = eye_distance * size / max(float(np.hypot(*eye_line)), 1e-6)
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    middle = (left + right) / 2
    target = np.array([size / 2, eye_y * size])
    return np.hstack([rotation, (target - rotation @ middle)[:, None]])


def align_face(
    image: Image.Image,
    face: Face,
    *,
    size: int = 1024,
    eye_distance: float = PREPARE_EYE_DISTANCE,
    eye_y: float = PREPARE_EYE_Y,
) -> Image.Image:
    """The square ``size`` crop of ``face`` in ``image`` (RGB), eyes level at the standard place."""
    pixels = to_array(image)
    matrix = alignment_matrix(face, size, eye_distance=eye_distance, eye_y=eye_y)
    # Shrink big photos first with area averaging: warpAffine alone would alias on a large reduction.
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        factor = min(1.0, 2.0 * scale)
        height, width = pixels.shape[:2]
        small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        pixels = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA)
        actual = np.array([small_size[0] / width, small_size[1] / height])
        matrix = matrix.copy()
        matrix[:, :2] = matrix[:, :2] / actual[None, :]
    crop = cv2.warpAffine(pixels, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return Image.fromarray(crop)
