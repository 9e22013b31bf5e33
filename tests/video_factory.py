"""Synthetic clips for the video tests: camera moves over a photo, faces crossing, a sine-wave audio track."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

AUDIO_RATE = 16000


def write_clip(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 12,
    audio: bool = True,
    codec: str = "libx264",
    pts: list[int] | None = None,
) -> Path:
    """Encode RGB ``frames`` (one pts per frame at 1/fps unless ``pts`` is given, for variable rate)."""
    import av

    frames = list(frames)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
        stream.time_base = Fraction(1, fps * 10)
        audio_stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = pts[index] if pts else index * 10
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            seconds = len(frames) / fps
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE)).astype(
                np.float32
            )
            for start in range(0, len(samples), 1024):
                chunk = samples[start : start + 1024]
                audio_frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                audio_frame.sample_rate = AUDIO_RATE
                audio_frame.pts = start
                for packet in audio_stream.encode(audio_frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def camera_move(photo: Image.Image, count: int, *, size: int = 192, kind: str = "pan") -> list[np.ndarray]:
    """``count`` frames of a known camera move over ``photo``: pan, zoom or roll (degrees)."""
    return [warp_frame(photo, move_matrix(photo.size, index, count, size, kind), size) for index in range(count)]


def move_matrix(photo_size: tuple[int, int], index: int, count: int, size: int, kind: str) -> np.ndarray:
    """The 2x3 affine taking photo pixels to frame ``index``'s pixels (the true motion)."""
    width, height = photo_size
    t = index / max(count - 1, 1)
    scale = size / min(width, height) * (1.0 + (0.25 * t if kind == "zoom" else 0.0))
    angle = 12.0 * t if kind == "roll" else 0.0
    shift = 0.08 * size * t if kind == "pan" else 0.0
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += (size / 2 - width / 2 + shift, size / 2 - height / 2)
    return matrix


def warp_frame(photo: Image.Image, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(
        np.asarray(photo.convert("RGB")), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def around_face(photo: Image.Image, margin: float = 1.0) -> Image.Image:
    """The square around the photo's largest face, ``margin`` face widths on each side of its centre."""
    from faceswap_core.faces.detect import find_face

    face = find_face(photo)
    (cx, cy), half = face.center, face.width * margin
    return photo.convert("RGB").crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))


def face_patch(photo: Image.Image, side: int) -> np.ndarray:
    """The square around the photo's largest face as a ``side`` px tile to move around a frame."""
    return np.asarray(around_face(photo).resize((side, side), Image.LANCZOS))


def crossing(
    first: np.ndarray, second: np.ndarray, count: int, *, width: int = 320, height: int = 160
) -> list[np.ndarray]:
    """Two face tiles passing each other left-right; ``second`` is drawn over ``first`` where they meet."""
    side = first.shape[0]
    frames = []
    for index in range(count):
        t = index / max(count - 1, 1)
        canvas = np.full((height, width, 3), 90, dtype=np.uint8)
        left = round(t * (width - side))
        right = round((1 - t) * (width - side))
        top = (height - side) // 2
        canvas[top : top + side, left : left + side] = first
        canvas[top : top + side, right : right + side] = second
        frames.append(canvas)
    return frames
