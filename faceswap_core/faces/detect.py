"""Face detection with 68 landmarks, behind one small interface with two backends.

``dlib`` (the default) works offline: its HOG detector and 68-point shape predictor ship in the
``face_recognition_models`` package. Faces are looked for on a reduced copy of the image (a 12 MP
photo is searched at about 1 MP, with the detector upsampled once so faces down to ~40 px of that
copy are found), then the landmarks are fitted on the full-resolution image inside the scaled-up
box, so large photos stay fast without losing landmark precision. ``face-alignment`` is optional and
downloads its weights on first use; nothing depends on it.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from faceswap_core.errors import ModelLoadError, NoFaceError, SettingsError, first_line
from faceswap_core.images import ImageInput, describe, load_image, to_array
from faceswap_core.settings import (
    DEFAULT_FACE_BACKEND,
    DETECT_MAX_SIDE,
    DETECT_MIN_SCORE,
    DETECT_NMS_IOU,
    DETECT_UPSAMPLE,
    FACE_BACKENDS,
)

LEFT_EYE = slice(36, 42)  # image-left eye (the subject's right eye) in iBUG-300W order
RIGHT_EYE = slice(42, 48)
JAW = slice(0, 17)
BROWS = slice(17, 27)


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face; coordinates are pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    landmarks: np.ndarray  # (68, 2) float, iBUG-300W order
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def left_eye(self) -> np.ndarray:
        """Centre of the eye on the left of the image."""
        return self.landmarks[LEFT_EYE].mean(axis=0)

    @property
    def right_eye(self) -> np.ndarray:
        """Centre of the eye on the right of the image."""
        return self.landmarks[RIGHT_EYE].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres: the scale measure used for alignment."""
        return float(np.linalg.norm(self.right_eye - self.left_eye))

    @property
    def jaw_width(self) -> float:
        """Ear-to-ear width along the jaw line; what mask sizes scale with."""
        return float(np.linalg.norm(self.landmarks[16] - self.landmarks[0]))

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by ``factor``."""
        return Face(tuple(v * factor for v in self.box), self.landmarks * factor, self.score)  # type: ignore[arg-type]


_dlib_models: dict[str, Any] = {}
_dlib_lock = threading.Lock()
_fa_models: dict[str, Any] = {}
_fa_lock = threading.Lock()


def dlib_model_path(filename: str) -> Path:
    """Path of a model file of ``face_recognition_models``, found without importing it.

    Importing the package needs ``pkg_resources``, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the dlib face models are missing; install them with: pip install face-recognition-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing; reinstall it with: pip install --force-reinstall face-recognition-models"
        )
    return path


def dlib_model(name: str) -> Any:
    """A dlib model loaded once per process: ``detector``, ``landmarks`` or ``recognition``."""
    with _dlib_lock:
        if name not in _dlib_models:
            try:
                import dlib
            except ImportError:
                raise ModelLoadError("dlib is not installed; install it with: pip install dlib-bin") from None
            if name == "detector":
                _dlib_models[name] = dlib.get_frontal_face_detector()
            elif name == "landmarks":
                _dlib_models[name] = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
            elif name == "recognition":
                path = dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
                _dlib_models[name] = dlib.face_recognition_model_v1(str(path))
            else:
                raise ValueError(f"unknown dlib model {name!r}")
        return _dlib_models[name]


def _as_image(image: ImageInput, name: str | None) -> Image.Image:
    return load_image(image, name=describe(image, name))


def detect_faces(image: ImageInput, *, backend: str = DEFAULT_FACE_BACKEND, name: str | None = None) -> list[Face]:
    """Every face in ``image`` with box, landmarks and score, largest first (an empty list if none)."""
    if backend not in FACE_BACKENDS:
        raise SettingsError(f"face backend must be one of {', '.join(FACE_BACKENDS)}, got {backend!r}")
    pixels = to_array(_as_image(image, name))
    faces = _detect_dlib(pixels) if backend == "dlib" else _detect_face_alignment(pixels)
    return sorted(faces, key=lambda f: f.width * f.height, reverse=True)


def find_face(
    image: ImageInput, index: int = 0, *, backend: str = DEFAULT_FACE_BACKEND, name: str | None = None
) -> Face:
    """The ``index``-th largest face, or :class:`NoFaceError` naming the image."""
    label = describe(image, name)
    if index < 0:
        raise SettingsError(f"face index must be 0 or more, got {index}")
    faces = detect_faces(image, backend=backend, name=label)
    if not faces:
        raise NoFaceError(f"{label}: no face found (a frontal face about 40 px wide or larger is needed)")
    if index >= len(faces):
        found = "1 face was" if len(faces) == 1 else f"{len(faces)} faces were"
        raise NoFaceError(f"{label}: face index {index} was asked for but only {found} found (indexes start at 0)")
    return faces[index]


def _detect_dlib(pixels: np.ndarray) -> list[Face]:
    import dlib

    height, width = pixels.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = pixels
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    rects, scores, _ = dlib_model("detector").run(small, DETECT_UPSAMPLE, DETECT_MIN_SCORE)
    kept = _non_max_suppression([(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects], list(scores))
    predictor = dlib_model("landmarks")
    faces = []
    for (x0, y0, x1, y1), score in kept:
        box = (x0 / factor, y0 / factor, x1 / factor, y1 / factor)
        rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
        shape = predictor(pixels, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box, points, float(score)))
    return faces


def _non_max_suppression(
    boxes: list[tuple[float, float, float, float]], scores: list[float]
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Drop boxes overlapping a better one: the upsampled pyramid reports some faces twice."""
    kept: list[tuple[tuple[float, float, float, float], float]] = []
    for box, score in sorted(zip(boxes, scores, strict=True), key=lambda item: item[1], reverse=True):
        if all(_iou(box, other) <= DETECT_NMS_IOU for other, _ in kept):
            kept.append((box, score))
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detect_face_alignment(pixels: np.ndarray) -> list[Face]:
    with _fa_lock:
        if "model" not in _fa_models:
            try:
                import face_alignment
            except ImportError:
                raise ModelLoadError(
                    "the face-alignment backend is not installed; install it with 'pip install face-alignment' "
                    "or use --backend dlib"
                ) from None
            try:
                _fa_models["model"] = face_alignment.FaceAlignment(
                    face_alignment.LandmarksType.TWO_D, device="cpu", flip_input=False
                )
            except Exception as err:  # weights download or load failures come in many types
                reason = first_line(err, 10_000)
                raise ModelLoadError(
                    f"the face-alignment weights could not be loaded ({reason}); run it once with internet access "
                    "so they are cached, or use --backend dlib"
                ) from None
        model = _fa_models["model"]
    landmarks, _, boxes = model.get_landmarks_from_image(pixels, return_bboxes=True)
    faces = []
    for points, box in zip(landmarks or [], boxes or [], strict=True):
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        score = float(box[4]) if len(box) > 4 else 1.0
        faces.append(Face((x0, y0, x1, y1), np.asarray(points, dtype=np.float64)[:, :2], score))
    return faces
