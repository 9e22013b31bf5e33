"""A face swapped through a whole clip: tracks, steady repaints, and a job folder that survives a cancel.

A clip goes through three passes over the decoded frames, each streaming one frame at a time:

1. **track**: detect faces (every ``detect_every``-th frame), follow the chosen people, fill short
   gaps and smooth the landmarks (:mod:`faceswap_core.faces.track`); kept in ``tracks.npz``;
2. **repaint**: every frame with a tracked face goes through :func:`swap_frame`, the one per-frame
   call into the engine, run by a :class:`FrameSwapper` (here, or on Ray's actors: results come back
   in frame order); the optical-flow blend with the previous output stays here, in order; the
   repainted box is saved as a PNG patch, and ``job.json`` records the last finished frame, so a
   cancel keeps the work and a later run resumes after it;
3. **export**: the input decoded once more, the patches pasted back, encoded with the input's audio.

Why repaints stay steady: each track keeps one seed, so the starting noise is the same tensor in
the coordinates of the face's crop (the crop follows the smoothed face and is resampled to the
model's size); the masks follow the smoothed landmarks; and each repaint can be mixed with the
previous one warped onto it by optical flow (DIS, no weights), which damps what still flickers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from PIL import Image

from faceswap_core.errors import CancelledError, NoFaceError, SettingsError
from faceswap_core.media import BadVideoError, CorruptVideoError, Frame, VideoInfo, VideoWriter, probe, read_frames
from faceswap_core.settings import (
    DEFAULT_FACE_BACKEND,
    MAX_FACES,
    MAX_SEED,
    VIDEO_DETECT_EVERY,
    VIDEO_MATCH_DISTANCE,
    VIDEO_TEMPORAL_BLEND,
    VIDEO_TRACK_MAX_GAP_S,
    MaskSettings,
    SwapSettings,
    VideoLimits,
    as_dict,
)

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.faces.detect import Face

JobProgress = Callable[[str, int, int, float | None], None]  # stage, frame done, frames, seconds left
JOB_VERSION = 1


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is swapped: the photo settings for every face, plus what only clips have."""

    swap: SwapSettings = SwapSettings()
    faces: tuple[int, ...] = (0,)  # face numbers (largest first) on the frame at ``pick_s``; () with a reference
    pick_s: float = 0.0
    reference: str | None = None  # a photo of the person to follow instead of face numbers
    temporal_blend: float = VIDEO_TEMPORAL_BLEND.default
    detect_every: int = VIDEO_DETECT_EVERY
    max_gap_s: float = VIDEO_TRACK_MAX_GAP_S
    smooth: bool = True
    mask: MaskSettings = MaskSettings()
    face_swaps: tuple[SwapSettings, ...] = ()  # one per followed face (each its own person); (): ``swap`` for all

    def validate(self) -> None:
        self.swap.validate()
        for each in self.face_swaps:
            each.validate()
        if self.face_swaps and len(self.face_swaps) != max(1, len(self.faces) if self.reference is None else 1):
            raise SettingsError(f"{len(self.face_swaps)} face settings for {len(self.faces) or 1} followed face(s)")
        self.mask.validate()
        VIDEO_TEMPORAL_BLEND.check("temporal blend", self.temporal_blend)
        if not 1 <= self.detect_every <= 30:
            raise SettingsError(f"detect every must be between 1 and 30 frames, got {self.detect_every}")
        if not 0 <= self.max_gap_s <= 5:
            raise SettingsError(f"the longest gap filled must be between 0 and 5 s, got {self.max_gap_s:g}")
        if self.pick_s < 0:
            raise SettingsError(f"the frame to pick faces on must be at 0 s or later, got {self.pick_s:g}")
        if self.reference is None and not self.faces:
            raise SettingsError("choose at least one face number, or give a photo of the person to follow")
        if len(self.faces) > MAX_FACES or any(index < 0 for index in self.faces):
            raise SettingsError(f"face numbers must be 0 or more, at most {MAX_FACES} of them")

    def track_swap(self, track: int) -> SwapSettings:
        """The settings of the ``track``-th followed face (before its own seed is drawn from their seed)."""
        return self.face_swaps[track] if self.face_swaps else self.swap


@dataclass(frozen=True)
class TrackPlan:
    """What one tracked face gets on one frame: where it is and the settings (its own fixed seed)."""

    track: int
    face: Face
    settings: SwapSettings


def swap_frame(
    engine: Engine,
    pixels: np.ndarray,
    plans: Sequence[TrackPlan],
    *,
    mask_settings: MaskSettings | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, Image.Image]:
    """Repaint one frame's tracked faces: the single call a clip makes into the engine, per frame.

    The faces come from the tracker (``Engine.prepare`` is handed them: no detection here); the seed
    in each plan's settings fixes the starting noise of that face's crop. Returns the frame and the
    union of the masks used.
    """
    from faceswap_core.engine import FaceTarget

    targets = [FaceTarget(plan.settings, number) for number, plan in enumerate(plans)]
    faces = [plan.face for plan in plans]
    prepared = engine.prepare(Image.fromarray(pixels), targets, mask_settings=mask_settings, faces=faces)
    result = engine.repaint(prepared, cancel=cancel)
    assert result.mask is not None
    return np.asarray(result.image), result.mask


# One frame's work: the frame and its tracked faces' plans (none: the frame passes through untouched).
FrameWork = tuple[Frame, list[TrackPlan]]
# What comes back for it: the repainted frame and the union of its masks, or None for a frame without plans.
Swapped = tuple[np.ndarray, np.ndarray] | None


class FrameSwapper(Protocol):
    """Runs :func:`swap_frame` on a stream of frames and yields each with its result, in frame order.

    It pulls frames from ``work`` as it goes (a bounded number ahead), so a clip is never held whole.
    """

    def map(
        self, work: Iterable[FrameWork], mask_settings: MaskSettings, cancel: threading.Event | None
    ) -> Generator[tuple[Frame, list[TrackPlan], Swapped], None, None]: ...


class LocalFrames:
    """The engine in this process, one frame at a time (nothing runs ahead, so a cancel stops mid-frame)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def map(
        self, work: Iterable[FrameWork], mask_settings: MaskSettings, cancel: threading.Event | None
    ) -> Generator[tuple[Frame, list[TrackPlan], Swapped], None, None]:
        for frame, plans in work:
            if not plans:
                yield frame, plans, None
                continue
            output, mask = swap_frame(self.engine, frame.pixels, plans, mask_settings=mask_settings, cancel=cancel)
            yield frame, plans, (output, np.asarray(mask))


def track_seed(base: int | None, track: int) -> int:
    """Each track's fixed seed: from the chosen seed (or 0) and the track number, stable across runs."""
    digest = hashlib.sha256(f"{base or 0}:{track}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (MAX_SEED + 1)


def flow_blend(
    previous_input: np.ndarray,
    current_input: np.ndarray,
    previous_output: np.ndarray,
    current_output: np.ndarray,
    mask: np.ndarray,
    share: float,
) -> np.ndarray:
    """Mix the previous repaint, warped onto this frame by DIS optical flow, into this repaint inside the mask.

    The flow is measured between the input frames (the repaints differ by what is to be damped), from
    this frame back to the previous one, so every pixel here knows where it was.
    """
    if share <= 0:
        return current_output
    previous_gray = cv2.cvtColor(previous_input, cv2.COLOR_RGB2GRAY)
    current_gray = cv2.cvtColor(current_input, cv2.COLOR_RGB2GRAY)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST).calc(current_gray, previous_gray, None)
    height, width = mask.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(
        previous_output, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    weight = (mask.astype(np.float32) / 255.0 * share)[..., None]
    mixed = current_output.astype(np.float32) * (1 - weight) + warped.astype(np.float32) * weight
    return np.where(mask[..., None] > 0, np.clip(np.rint(mixed), 0, 255), current_output).astype(np.uint8)


@dataclass
class JobState:
    """``job.json``: what the job is (to refuse resuming a different one) and how far it got."""

    input: str
    input_size: int
    input_mtime_ns: int
    settings: dict[str, Any]
    frames: int = 0  # frames in the clip (decoded, not the header's estimate); 0 before tracking
    done: int = 0  # frames finished: 0 .. done-1 are repainted (or had no chosen face)
    broken_at_s: float | None = None  # the stream broke after this time: only the good part is used
    seeds: list[int] = field(default_factory=list)
    version: int = JOB_VERSION


class VideoJob:
    """One clip's swap in a folder: ``job.json``, ``tracks.npz`` and ``patches/`` (repainted boxes as PNG)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        clip: str | os.PathLike,
        settings: VideoSettings,
        limits: VideoLimits | None,
        *,
        landmarks: str = DEFAULT_FACE_BACKEND,
        controlnet: str | None = None,
    ) -> None:
        settings.validate()
        self.landmarks = landmarks  # the engine's landmark backend: tracks and masks read the same points
        self.folder = Path(folder)
        self.info: VideoInfo = probe(clip, limits)
        self.settings = settings
        self.patches = self.folder / "patches"
        stat = self.info.path.stat()
        record = _settings_record(settings)
        if any(each.keep_expression > 0 for each in (settings.swap, *settings.face_swaps)):
            # the ControlNet that held the expression: another one is another job
            record["controlnet"] = controlnet
        fresh = JobState(str(self.info.path.resolve()), stat.st_size, stat.st_mtime_ns, record)
        self.state = fresh
        saved = self._load_state()
        if saved is not None and _same_job(saved, fresh):
            self.state = saved
        else:
            for stale in (self.folder / "tracks.npz", *self.patches.glob("*.png")):
                stale.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.patches.mkdir(exist_ok=True)
        self._save_state()
        self.tracks: list[list[np.ndarray | None]] = []
        self.timings: dict[str, float] = {
            "decode_s": 0.0,
            "detect_s": 0.0,
            "track_s": 0.0,
            "repaint_s": 0.0,
            "flow_s": 0.0,
            "describe_s": 0.0,
        }

    @property
    def finished(self) -> bool:
        return self.state.frames > 0 and self.state.done >= self.state.frames

    # --- pass 1: tracks ------------------------------------------------------------------------
    def track(self, progress: JobProgress | None = None, cancel: threading.Event | None = None) -> None:
        """Follow the chosen faces through the clip (once per job; kept in ``tracks.npz``)."""
        from faceswap_core.faces.detect import detect_faces
        from faceswap_core.faces.identity import face_descriptor
        from faceswap_core.faces.track import FaceTracker

        saved = self.folder / "tracks.npz"
        if saved.is_file() and self.state.frames:
            with np.load(saved) as data:
                points = data["landmarks"]  # (tracks, frames, 68, 2), NaN where absent
            self.tracks = [[None if np.isnan(p).any() else p for p in track] for track in points]
            return
        tracker = FaceTracker(self._descriptors())

        def describe(pixels: np.ndarray, face: Face) -> np.ndarray:
            started = time.perf_counter()
            descriptor = face_descriptor(pixels, face)
            self.timings["describe_s"] += time.perf_counter() - started
            return descriptor

        settings = self.settings
        started = time.perf_counter()
        count = 0
        try:
            decode_started = time.perf_counter()
            for frame in read_frames(self.info):
                self.timings["decode_s"] += time.perf_counter() - decode_started
                if cancel is not None and cancel.is_set():
                    raise CancelledError("the clip was cancelled while finding its faces; nothing was repainted")
                detect_started = time.perf_counter()
                found = frame.index % settings.detect_every == 0
                faces = detect_faces(frame.pixels, backend=self.landmarks) if found else None
                tracked = time.perf_counter()
                self.timings["detect_s"] += tracked - detect_started
                tracker.update(faces, functools.partial(describe, frame.pixels))
                self.timings["track_s"] += time.perf_counter() - tracked
                count = frame.index + 1
                if progress is not None:
                    progress("finding faces", count, self.info.frames, None)
                decode_started = time.perf_counter()
        except CorruptVideoError as err:
            if err.frames == 0:
                raise BadVideoError(str(err)) from None
            self.state.broken_at_s = err.at_s
        if count == 0:
            raise BadVideoError(f"{self.info.path.name}: the video stream has no frames")
        finished = time.perf_counter()
        tracks = tracker.finish(fps=float(self.info.fps), max_gap_s=settings.max_gap_s, smooth=settings.smooth)
        self.timings["track_s"] += time.perf_counter() - finished
        if not any(track.seen[i] for track in tracks for i in range(count)):
            raise NoFaceError(f"{self.info.path.name}: the chosen face was not found in any frame")
        self.tracks = [track.landmarks for track in tracks]
        array = np.full((len(tracks), count, 68, 2), np.nan, dtype=np.float64)
        for t, landmarks in enumerate(self.tracks):
            for i, points in enumerate(landmarks):
                if points is not None:
                    array[t, i] = points
        np.savez_compressed(saved, landmarks=array)
        self.state.frames = count
        self.state.seeds = [track_seed(settings.track_swap(t).seed, t) for t in range(len(tracks))]
        self._save_state()
        self.timings["track_total_s"] = time.perf_counter() - started

    def _descriptors(self) -> list[np.ndarray]:
        """The people to follow: the reference photo's face, or the chosen face numbers on the pick frame."""
        from faceswap_core.faces.identity import face_descriptor

        if self.settings.reference is not None:
            return [face_descriptor(self.settings.reference, name="reference photo")]
        frame, faces = faces_at(self.info, self.settings.pick_s, landmarks=self.landmarks)
        if not faces:
            raise NoFaceError(f"{self.info.path.name}: no face on the frame at {frame.time_s:.2f} s to choose from")
        for index in self.settings.faces:
            if index >= len(faces):
                raise NoFaceError(
                    f"{self.info.path.name}: there is no face {index} at {frame.time_s:.2f} s "
                    f"({len(faces)} found, numbers 0-{len(faces) - 1})"
                )
        return [face_descriptor(frame.pixels, faces[index]) for index in self.settings.faces]

    # --- pass 2: repaint -----------------------------------------------------------------------
    def repaint(
        self,
        engine: Engine,
        progress: JobProgress | None = None,
        cancel: threading.Event | None = None,
        frames: FrameSwapper | None = None,
    ) -> None:
        """Repaint frames from the last finished one; on cancel the finished ones stay and are resumed from.

        ``frames`` runs the per-frame repaints (default: ``engine`` here, one frame at a time); whatever
        runs them, the blend with the previous output and the saving happen here, in frame order.
        """
        if not self.tracks:
            self.track(progress, cancel)
        state, settings = self.state, self.settings
        swapper = frames or LocalFrames(engine)
        track_settings = [replace(settings.track_swap(t), seed=seed) for t, seed in enumerate(state.seeds)]
        previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, output) of the frame before
        started, done_here = time.perf_counter(), 0
        start = max(0, state.done - 1) if settings.temporal_blend > 0 else state.done

        def stop_if_cancelled() -> None:
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled after {state.done} of {state.frames} frames; run again to resume")

        def work() -> Iterator[FrameWork]:
            decode_started = time.perf_counter()
            for frame in read_frames(self.info, start=start, stop=state.frames):
                self.timings["decode_s"] += time.perf_counter() - decode_started
                stop_if_cancelled()  # checked before a frame is handed over, so no work starts after a cancel
                # the frame before the resume point is not repainted again: only its saved output is needed
                yield frame, self._plans(frame.index, track_settings) if frame.index >= state.done else []
                decode_started = time.perf_counter()

        results = swapper.map(work(), settings.mask, cancel)
        try:
            waited = (time.perf_counter(), self.timings["decode_s"])
            for frame, _, swapped in results:
                if frame.index < state.done:
                    resumed = bool(self._plans(frame.index, track_settings))
                    previous = (frame.pixels, self._patched(frame)) if resumed else None
                    waited = (time.perf_counter(), self.timings["decode_s"])
                    continue
                stop_if_cancelled()  # results that arrive after a cancel are dropped, not saved
                if swapped is not None:
                    output, mask_array = swapped
                    if previous is not None:
                        blend_started = time.perf_counter()
                        output = flow_blend(
                            previous[0], frame.pixels, previous[1], output, mask_array, settings.temporal_blend
                        )
                        self.timings["flow_s"] += time.perf_counter() - blend_started
                    self._save_patch(frame.index, frame.pixels, output)
                    previous = (frame.pixels, output)
                else:
                    previous = None
                # the repaint (or the wait for it), the blend and the save; not the decoding in between
                self.timings["repaint_s"] += time.perf_counter() - waited[0] - (self.timings["decode_s"] - waited[1])
                state.done = frame.index + 1
                self._save_state()
                done_here += 1
                if progress is not None:
                    elapsed = time.perf_counter() - started
                    left = elapsed / done_here * (state.frames - state.done)
                    progress("swapping", state.done, state.frames, left)
                waited = (time.perf_counter(), self.timings["decode_s"])
        finally:
            results.close()  # stop the swapper's work ahead (a cancel, an error)

    def _plans(self, index: int, track_settings: Sequence[SwapSettings]) -> list[TrackPlan]:
        """Frame ``index``'s tracked faces, each with its track's settings (and so its fixed seed)."""
        from faceswap_core.faces.track import face_from_landmarks

        return [
            TrackPlan(t, face_from_landmarks(landmarks[index]), track_settings[t])
            for t, landmarks in enumerate(self.tracks)
            if landmarks[index] is not None
        ]

    # --- pass 3: export ------------------------------------------------------------------------
    def export(self, output: str | os.PathLike, *, audio: bool = True) -> Path:
        """Write the finished frames (all of them, or those done before a cancel) with the input's audio."""
        if self.state.done == 0:
            raise CancelledError("no frame was finished; nothing to write")
        encode_started = time.perf_counter()
        with VideoWriter(output, self.info, audio=audio) as writer:
            for frame in read_frames(self.info, stop=self.state.done):
                writer.write(frame, self._patched(frame))
        self.timings["encode_s"] = time.perf_counter() - encode_started
        return Path(output)

    def _patch_path(self, index: int) -> Path | None:
        found = sorted(self.patches.glob(f"{index:06d}_*.png"))
        return found[0] if found else None

    def _save_patch(self, index: int, original: np.ndarray, output: np.ndarray) -> None:
        """Keep only the changed box of a repainted frame (a PNG, lossless), written atomically."""
        changed = np.any(original != output, axis=2)
        if not changed.any():
            return
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        path = self.patches / f"{index:06d}_{x0}_{y0}.png"
        partial = path.with_suffix(".part")
        Image.fromarray(output[y0:y1, x0:x1]).save(partial, format="PNG", compress_level=1)
        os.replace(partial, path)

    def _patched(self, frame: Frame) -> np.ndarray:
        """The frame with its saved patch pasted back (the frame itself, untouched, when it has none)."""
        path = self._patch_path(frame.index)
        if path is None:
            return frame.pixels
        _, x0, y0 = path.stem.split("_")
        patch = np.asarray(Image.open(path).convert("RGB"))
        pixels = frame.pixels.copy()
        pixels[int(y0) : int(y0) + patch.shape[0], int(x0) : int(x0) + patch.shape[1]] = patch
        return pixels

    def _load_state(self) -> JobState | None:
        path = self.folder / "job.json"
        try:
            return JobState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save_state(self) -> None:
        path = self.folder / "job.json"
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(asdict(self.state), indent=1))
        os.replace(partial, path)


def faces_at(info: VideoInfo, at_s: float, *, landmarks: str = DEFAULT_FACE_BACKEND) -> tuple[Frame, list[Face]]:
    """The first frame at or after ``at_s`` (the last one if the clip is shorter) and its faces, largest first."""
    from faceswap_core.faces.detect import detect_faces

    chosen: Frame | None = None
    try:
        for frame in read_frames(info):
            chosen = frame
            if frame.time_s >= at_s:
                break
    except CorruptVideoError:
        if chosen is None:
            raise
    if chosen is None:
        raise BadVideoError(f"{info.path.name}: the video stream has no frames")
    return chosen, detect_faces(chosen.pixels, backend=landmarks)


def preview(
    engine: Engine, clip: str | os.PathLike, settings: VideoSettings, limits: VideoLimits | None = None
) -> tuple[Image.Image, Image.Image]:
    """One frame (at ``settings.pick_s``) before and after, with the seeds the whole clip will use."""
    from faceswap_core.faces.identity import face_descriptor

    settings.validate()
    info = probe(clip, limits)
    frame, faces = faces_at(info, settings.pick_s, landmarks=engine.landmarks)
    if settings.reference is not None:
        wanted = face_descriptor(settings.reference, name="reference photo")
        distances = [float(np.linalg.norm(face_descriptor(frame.pixels, face) - wanted)) for face in faces]
        chosen = [int(np.argmin(distances))] if distances and min(distances) < VIDEO_MATCH_DISTANCE else []
    else:
        missing = [index for index in settings.faces if index >= len(faces)]
        if missing:
            raise NoFaceError(
                f"{info.path.name}: there is no face {missing[0]} at {frame.time_s:.2f} s ({len(faces)} found)"
            )
        chosen = list(settings.faces)
    if not chosen:
        raise NoFaceError(f"{info.path.name}: the chosen face is not on the frame at {frame.time_s:.2f} s")
    plans = [
        TrackPlan(t, faces[index], replace(settings.track_swap(t), seed=track_seed(settings.track_swap(t).seed, t)))
        for t, index in enumerate(chosen)
    ]
    output, _ = swap_frame(engine, frame.pixels, plans, mask_settings=settings.mask)
    return Image.fromarray(frame.pixels), Image.fromarray(output)


def swap_clip(
    engine: Engine,
    clip: str | os.PathLike,
    output: str | os.PathLike,
    settings: VideoSettings,
    *,
    job_folder: str | os.PathLike,
    limits: VideoLimits | None = None,
    progress: JobProgress | None = None,
    cancel: threading.Event | None = None,
    frames: FrameSwapper | None = None,
) -> VideoJob:
    """Track, repaint (resuming a job folder's finished frames) and export; a cancel still writes what is done.

    ``frames`` runs the repaints elsewhere (:class:`faceswap_core.cluster.data.RayFrames`); tracking,
    the blend and the encoding stay here, and the output is the same bytes.

    Raises :class:`CancelledError` after writing the finished part when cancelled, and
    :class:`CorruptVideoError` after writing the good part of a clip that breaks part-way.
    """
    job = VideoJob(job_folder, clip, settings, limits, landmarks=engine.landmarks, controlnet=engine.model.controlnet)
    try:
        job.repaint(engine, progress, cancel, frames)
    except CancelledError:
        if not job.state.done:
            raise
        job.export(output)
        raise CancelledError(
            f"cancelled after {job.state.done} of {job.state.frames} frames; they were written to "
            f"{Path(output).name}, and the same job resumes from there"
        ) from None
    job.export(output)
    if job.state.broken_at_s is not None:
        raise CorruptVideoError(
            f"{job.info.path.name}: the stream is corrupt after {job.state.broken_at_s:.2f} s; "
            f"the {job.state.done} good frames were swapped and written to {Path(output).name}",
            job.state.broken_at_s,
            job.state.done,
        )
    return job


def _settings_record(settings: VideoSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["swap"] = as_dict(settings.swap)
    record["face_swaps"] = [as_dict(each) for each in settings.face_swaps]
    return json.loads(json.dumps(record, default=str))


def _same_job(saved: JobState, fresh: JobState) -> bool:
    """Resume only the same clip (path, size, time) with the same settings and a known job layout."""
    return (
        saved.version == JOB_VERSION
        and (saved.input, saved.input_size, saved.input_mtime_ns)
        == (fresh.input, fresh.input_size, fresh.input_mtime_ns)
        and saved.settings == fresh.settings
    )
