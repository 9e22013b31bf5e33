"""Face detection with 68 landmarks, behind one small interface with three landmark backends.

``mediapipe`` (the default) is free for commercial use: dlib's HOG detector (Boost licence) finds the
faces, and MediaPipe's face mesh (Apache-2.0, its model inside the ``mediapipe`` wheel) places 468
points on a crop around each, of which the 68 that match the iBUG-300W scheme are kept, so alignment,
masks and identity crops read the same 68 points whatever the backend. Where HOG finds no face (a
hand over half of it), MediaPipe's full-range face detector looks again. ``dlib``'s 68-point model is
trained on iBUG 300-W: non-commercial only. Both work offline. Faces are looked for on a reduced copy
of the image (a 12 MP photo is searched at about 1 MP, with the detector upsampled once so faces down
to ~40 px of that copy are found), then the landmarks are fitted on the full-resolution image inside
the scaled-up box, so large photos stay fast without losing landmark precision. ``face-alignment`` is
optional and downloads its weights on first use; nothing depends on it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import warnings
from collections.abc import Iterator
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
    DETECT_MESH_CROP,
    DETECT_MESH_SIDE,
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
# dlib's models are not safe to run from two threads at once (a crash, or 35 faces in a one-face photo):
# every use holds this lock. A face takes milliseconds; the GPU work waits elsewhere.
dlib_lock = threading.RLock()
_fa_models: dict[str, Any] = {}
_fa_lock = threading.Lock()
_mp_models: dict[str, Any] = {}
_mp_lock = threading.Lock()  # a MediaPipe graph is not safe to run from two threads at once

# For each iBUG-300W point (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67, image left
# first), the face-mesh vertex that lies nearest it on average: fitted on dlib's 18 annotated training
# faces (examples/faces), checked on its 25 test faces (bench/landmarks.py). The jaw uses the mesh's
# face-oval vertices, mirrored left to right: the nearest ones lie inside the outline, and masks need
# the jaw points on it.
MESH_TO_IBUG68 = (
    (127, 93, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 323, 356)
    + (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
    + (168, 197, 195, 4, 75, 97, 2, 328, 460)
    + (7, 160, 158, 155, 153, 144, 381, 385, 387, 249, 373, 380)
    + (61, 39, 72, 11, 267, 304, 291, 405, 314, 17, 84, 181)
    + (62, 38, 13, 268, 292, 316, 15, 86)
)


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
    with dlib_lock:
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


def available_backends() -> tuple[str, ...]:
    """The landmark backends this installation can run: ``face-alignment`` is an optional package."""
    installed = importlib.util.find_spec("face_alignment") is not None
    return tuple(name for name in FACE_BACKENDS if name != "face-alignment" or installed)


def check_backend(backend: Any, what: str = "landmarks") -> str:
    """``backend`` when this installation can run it; otherwise one line naming the choices."""
    if not isinstance(backend, str) or backend not in FACE_BACKENDS:
        shown = repr(backend) if isinstance(backend, str | int | float | bool | None) else type(backend).__name__
        raise SettingsError(f"{what} must be one of {', '.join(available_backends())}, got {shown[:80]}")
    if backend not in available_backends():
        raise SettingsError(
            f"{what} {backend!r} is not installed here (pip install face-alignment); "
            f"use one of {', '.join(available_backends())}"
        )
    return backend


def detect_faces(image: ImageInput, *, backend: str = DEFAULT_FACE_BACKEND, name: str | None = None) -> list[Face]:
    """Every face in ``image`` with box, landmarks and score, largest first (an empty list if none)."""
    if backend not in FACE_BACKENDS:
        raise SettingsError(f"face backend must be one of {', '.join(FACE_BACKENDS)}, got {backend!r}")
    pixels = to_array(_as_image(image, name))
    if backend == "mediapipe":
        faces = _detect_mediapipe(pixels)
    elif backend == "dlib":
        faces = _detect_dlib(pixels)
    else:
        faces = _detect_face_alignment(pixels)
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
        raise NoFaceError(
            f"{label}: no face found (a frontal face about 40 px wide or larger is needed, and a face more than "
            "about half hidden, by a hand for instance, is not found: paint the mask by hand then)"
        )
    if index >= len(faces):
        found = "1 face was" if len(faces) == 1 else f"{len(faces)} faces were"
        raise NoFaceError(f"{label}: face index {index} was asked for but only {found} found (indexes start at 0)")
    return faces[index]


def _detect_dlib(pixels: np.ndarray) -> list[Face]:
    import dlib

    faces = []
    with dlib_lock:
        predictor = dlib_model("landmarks")
        for box, score in _hog_boxes(pixels):
            rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
            shape = predictor(pixels, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(Face(box, points, float(score)))
    return faces


def _detection_copy(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo at most ``DETECT_MAX_SIDE`` across for the detectors, and its scale (1: the photo itself)."""
    height, width = pixels.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
    if factor == 1.0:
        return pixels, factor
    # an explicit size: a 32 x 1,560,000 photo must not shrink to zero pixels across
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), factor


def _hog_boxes(pixels: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    """dlib's HOG face boxes (full-resolution pixels) with their scores, searched on a reduced copy."""
    small, factor = _detection_copy(pixels)
    with dlib_lock:
        rects, scores, _ = dlib_model("detector").run(small, DETECT_UPSAMPLE, DETECT_MIN_SCORE)
    kept = _non_max_suppression([(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects], list(scores))
    return [((x0 / factor, y0 / factor, x1 / factor, y1 / factor), score) for (x0, y0, x1, y1), score in kept]


def mediapipe_model(name: str) -> Any:
    """A MediaPipe solution built once per process: ``mesh`` (one face), ``detector`` (full range) or ``hands``.

    Callers hold ``_mp_lock`` while they run it.
    """
    if name not in _mp_models:
        # mediapipe 0.10.14 calls a protobuf 4 API that warns on every image; the call itself works.
        warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
        try:
            from mediapipe.python.solutions import face_detection, face_mesh, hands
        except ImportError:
            raise ModelLoadError(
                "the mediapipe landmarks are not installed; install them with: pip install mediapipe==0.10.14"
            ) from None
        if name == "mesh":
            model = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, min_detection_confidence=0.3)
        elif name == "detector":
            model = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        elif name == "hands":
            model = hands.Hands(static_image_mode=True, max_num_hands=2, min_detection_confidence=0.3)
        else:
            raise ValueError(f"unknown mediapipe model {name!r}")
        with _native_stderr_silenced():  # its C++ side logs start-up lines on the first image
            model.process(np.zeros((64, 64, 3), dtype=np.uint8))
        _mp_models[name] = model
    return _mp_models[name]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment: TFLite and absl write there past Python, and a user
    error must stay one line on stderr. Other threads' stderr is lost meanwhile (once per model)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _detect_mediapipe(pixels: np.ndarray) -> list[Face]:
    boxes = _hog_boxes(pixels)
    if not boxes:  # HOG needs most of a frontal face; the full-range detector also finds half-hidden ones
        boxes = _mediapipe_boxes(pixels)
    faces = []
    for box, score in boxes:
        points = _mesh_landmarks(pixels, box)
        if points is not None:
            faces.append(Face(box, points, float(score)))
    return faces


def _mediapipe_boxes(pixels: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    height, width = pixels.shape[:2]
    small, _ = _detection_copy(pixels)
    with _mp_lock:
        found = mediapipe_model("detector").process(np.ascontiguousarray(small)).detections or []
    boxes = []
    for detection in found:
        rel = detection.location_data.relative_bounding_box
        x0, y0 = rel.xmin * width, rel.ymin * height
        boxes.append(((x0, y0, x0 + rel.width * width, y0 + rel.height * height), float(detection.score[0])))
    return boxes


def _mesh_landmarks(pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The 68 iBUG points of the face in ``box`` from MediaPipe's mesh, run on a square crop around it.

    The mesh's own detector is a short-range one; a crop of a few face widths shows it every face as a
    selfie, so small faces in group photos get landmarks too. ``None`` when the mesh finds no face there.
    """
    height, width = pixels.shape[:2]
    side = DETECT_MESH_CROP * max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    x1, y1 = round(cx + side / 2), round(cy + side / 2)
    crop = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)  # black outside the photo keeps the face centred
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
    scale = min(1.0, DETECT_MESH_SIDE / crop.shape[0])
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with _mp_lock:
        found = mediapipe_model("mesh").process(crop).multi_face_landmarks
    if not found:
        return None
    mesh = found[0].landmark
    points = np.array([(mesh[i].x, mesh[i].y) for i in MESH_TO_IBUG68], dtype=np.float64)
    return points * (crop.shape[1], crop.shape[0]) / scale + (x0, y0)


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
