"""Faces followed through a clip: who is who from frame to frame, gaps filled, jitter smoothed.

A track follows one person, not one position: it starts from a descriptor (dlib's 128-D face
descriptor of a face picked on a frame, or of a reference photo) and each frame's detections are
matched to it by descriptor distance, with box overlap against the track's last box as the tie-break
that keeps the right face when two cross. A face missing for a short while (a blink of the detector,
a hand, a crossing face in front) gets landmarks interpolated between the frames around the miss; a
longer absence means the face left, and those frames pass through untouched until it comes back.
Landmarks are then smoothed with a One-Euro filter, so the box, the mask and the crop the model sees
stop jittering with the detector while fast moves still follow with little lag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceswap_core.faces.detect import Face, _iou
from faceswap_core.settings import VIDEO_MATCH_DISTANCE, VIDEO_SMOOTH_BETA, VIDEO_SMOOTH_MIN_CUTOFF

OVERLAP_BONUS = 0.3  # descriptor-distance credit for a detection on top of the track's last box
OVERLAP_ONLY_IOU = 0.6  # a detection this much on the last box is the same face even if the descriptor is off
ISOLATION_IOU = 0.05  # another face overlapping a track's last box more than this: ask the descriptors


@dataclass
class Track:
    """One person through the clip: reference descriptor, and per frame its landmarks (NaN where absent)."""

    descriptor: np.ndarray
    landmarks: list[np.ndarray | None] = field(default_factory=list)
    seen: list[bool] = field(default_factory=list)  # detected on that frame (not filled in)
    last_box: tuple[float, float, float, float] | None = None

    def face_at(self, index: int) -> Face | None:
        """The (filled, smoothed) face on frame ``index``, or None where the track is absent."""
        points = self.landmarks[index] if index < len(self.landmarks) else None
        return None if points is None else face_from_landmarks(points)


def face_from_landmarks(points: np.ndarray) -> Face:
    """A :class:`Face` whose box is the landmarks' bounds grown to about a detector's box."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    top = y0 - 0.15 * (y1 - y0)
    return Face((float(x0), float(top), float(x1), float(y1)), points.astype(np.float64), 1.0)


class FaceTracker:
    """Matches each frame's detections to the tracks; call :meth:`update` per frame, then :meth:`finish`."""

    def __init__(self, descriptors: Sequence[np.ndarray], *, match_distance: float = VIDEO_MATCH_DISTANCE) -> None:
        self.tracks = [Track(np.asarray(d, dtype=np.float64)) for d in descriptors]
        self.match_distance = match_distance

    def update(self, faces: Sequence[Face] | None, describe: Callable[[Face], np.ndarray] | None = None) -> None:
        """Record one frame: ``faces`` (None when detection did not run on it); ``describe`` gives a face's descriptor.

        Descriptors (the costly part) are computed only when box overlap cannot settle who is who:
        when each track has exactly one face well on its last box and no other face near it, that
        face is the same one; any doubt (a first frame, a crossing, a face come back) asks the descriptors.
        """
        chosen = self._by_overlap(faces) if faces else {}
        if faces and chosen is None:
            assert describe is not None
            descriptors = [describe(face) for face in faces]
            pairs = []
            for t, track in enumerate(self.tracks):
                for f, (face, descriptor) in enumerate(zip(faces, descriptors, strict=True)):
                    distance = float(np.linalg.norm(descriptor - track.descriptor))
                    overlap = 0.0 if track.last_box is None else _iou(face.box, track.last_box)
                    if distance < self.match_distance or overlap >= OVERLAP_ONLY_IOU:
                        pairs.append((distance - OVERLAP_BONUS * overlap, t, f))
            chosen, used = {}, set()
            for _, t, f in sorted(pairs):
                if t not in chosen and f not in used:
                    chosen[t] = f
                    used.add(f)
        for t, track in enumerate(self.tracks):
            face = faces[chosen[t]] if faces and chosen and t in chosen else None
            track.landmarks.append(None if face is None else np.asarray(face.landmarks, dtype=np.float64))
            track.seen.append(face is not None)
            if face is not None:
                track.last_box = face.box

    def _by_overlap(self, faces: Sequence[Face]) -> dict[int, int] | None:
        """Track -> face when every track has one clear face on its last box; None when it takes descriptors."""
        chosen: dict[int, int] = {}
        for t, track in enumerate(self.tracks):
            if track.last_box is None:
                return None
            overlaps = [_iou(face.box, track.last_box) for face in faces]
            close = [f for f, overlap in enumerate(overlaps) if overlap > ISOLATION_IOU]
            if len(close) != 1 or overlaps[close[0]] < OVERLAP_ONLY_IOU or close[0] in chosen.values():
                return None
            chosen[t] = close[0]
        return chosen

    def finish(self, *, fps: float, max_gap_s: float, smooth: bool = True) -> list[Track]:
        """Fill short gaps by interpolation, then smooth each run of frames; returns the tracks."""
        max_gap = max(1, round(max_gap_s * fps))
        for track in self.tracks:
            fill_gaps(track.landmarks, max_gap)
            if smooth:
                smooth_runs(track.landmarks, fps)
        return self.tracks


def fill_gaps(landmarks: list[np.ndarray | None], max_gap: int) -> None:
    """Interpolate landmarks linearly across runs of at most ``max_gap`` missing frames between two seen ones."""
    seen = [i for i, points in enumerate(landmarks) if points is not None]
    for before, after in zip(seen, seen[1:], strict=False):
        gap = after - before - 1
        if 0 < gap <= max_gap:
            start, end = landmarks[before], landmarks[after]
            assert start is not None and end is not None
            for offset in range(1, gap + 1):
                weight = offset / (gap + 1)
                landmarks[before + offset] = (1 - weight) * start + weight * end


def smooth_runs(landmarks: list[np.ndarray | None], fps: float) -> None:
    """One-Euro filter over each run of consecutive present frames (a face that left restarts fresh)."""
    smoother: OneEuroFilter | None = None
    for index, points in enumerate(landmarks):
        if points is None:
            smoother = None
            continue
        if smoother is None:
            smoother = OneEuroFilter(fps)
        landmarks[index] = smoother(points)


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012): a low-pass whose cut-off rises with speed.

    Steady when still (no jitter from the detector), little lag when moving; one filter over all
    coordinates of an array, with the speed measured per coordinate.
    """

    def __init__(
        self,
        fps: float,
        *,
        min_cutoff: float = VIDEO_SMOOTH_MIN_CUTOFF,
        beta: float = VIDEO_SMOOTH_BETA,
        derivative_cutoff: float = 1.0,
    ) -> None:
        self.rate, self.min_cutoff, self.beta, self.derivative_cutoff = fps, min_cutoff, beta, derivative_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.rate)

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = value.copy(), np.zeros_like(value)
            return value
        assert self.speed is not None
        speed = (value - self.value) * self.rate
        alpha_d = self._alpha(self.derivative_cutoff)
        self.speed = alpha_d * speed + (1 - alpha_d) * self.speed
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        alpha = self._alpha(cutoff)
        self.value = alpha * value + (1 - alpha) * self.value
        return self.value.copy()
