"""Who is in a photo: dlib's 128-D face descriptor and the distance to reference photos.

Used to rank swap results by how much the new face looks like the person of the LoRA. dlib's ResNet
works offline and is trained so that two photos of one person lie closer than 0.6 apart. Faces are
first warped to dlib's standard 150x150 chip, so tiny faces in full-body shots are upscaled the same
way large ones are reduced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceswap_core.errors import NoFaceError
from faceswap_core.faces.detect import Face, dlib_lock, dlib_model, find_face
from faceswap_core.images import ImageInput, describe, load_image, to_array

CHIP_SIZE = 150  # the input size dlib's recognition network was trained on
CHIP_PADDING = 0.25
# The chip is placed from the 5 points of dlib's 5-point model (eye corners, base of the nose), taken
# from the 68: dlib's network was trained on 5-point chips, and eye corners and nose agree across the
# landmark backends, while brows and jaw are placed by each backend's own convention.
FIVE_POINTS = (45, 42, 36, 39, 33)


def face_descriptor(image: ImageInput, face: Face | None = None, *, name: str | None = None) -> np.ndarray:
    """The (128,) descriptor of ``face`` (default: the largest face) in ``image``."""
    import dlib

    label = describe(image, name)
    picture = load_image(image, name=label)
    if face is None:
        face = find_face(picture, name=label)
    pixels = to_array(picture)
    x0, y0, x1, y1 = (round(v) for v in face.box)
    rect = dlib.rectangle(x0, y0, x1 - 1, y1 - 1)
    points = [dlib.point(round(x), round(y)) for x, y in face.landmarks[list(FIVE_POINTS)]]
    shape = dlib.full_object_detection(rect, points)
    with dlib_lock:  # see dlib_lock: one thread in dlib at a time
        chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.array(dlib_model("recognition").compute_face_descriptor(chip), dtype=np.float64)


class IdentityScorer:
    """Distance from a face to a fixed set of reference photos; reference descriptors are computed once.

    References without a face are skipped (listed in ``skipped``); if none has a face,
    :class:`NoFaceError` is raised.
    """

    def __init__(self, references: Sequence[ImageInput]) -> None:
        self.descriptors: list[np.ndarray] = []
        self.skipped: list[tuple[str, str]] = []
        for reference in references:
            label = describe(reference)
            try:
                self.descriptors.append(face_descriptor(reference, name=label))
            except NoFaceError as err:
                self.skipped.append((label, str(err)))
        if not self.descriptors:
            raise NoFaceError(f"none of the {len(references)} reference photos shows a detectable face")

    def distance(self, image: ImageInput, face: Face | None = None) -> float:
        """Mean Euclidean distance to the references: lower is more alike (same person below ~0.6)."""
        descriptor = face_descriptor(image, face)
        return float(np.mean([np.linalg.norm(descriptor - ref) for ref in self.descriptors]))
