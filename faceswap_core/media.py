"""Clips in and out with PyAV (its wheels bring FFmpeg): frames stream one at a time, never the whole clip.

Reading keeps each frame's own timestamp, so variable-frame-rate clips come out with the same timing,
and applies rotation metadata (phones store portrait clips as landscape plus a rotation), so faces are
upright for the detector. Writing makes H.264 MP4 (yuv420p, what every player takes) with the input's
audio copied, or FFV1 in Matroska (lossless RGB: an untouched frame reads back byte for byte) or a
folder of PNG frames for editing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceswap_core.errors import FaceswapError, first_line
from faceswap_core.settings import VIDEO_FORMATS, VideoLimits

TRUNCATED_SLACK_S = 0.5  # a stream ending this much before its header's duration was cut short
MP4_AUDIO_COPY = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}  # else re-encoded to AAC


class BadVideoError(FaceswapError):
    """The input is not a usable clip (not a video, no frames, audio only, over the limits)."""


class CorruptVideoError(BadVideoError):
    """Decoding failed part-way: ``at_s`` is the time of the last good frame, ``frames`` how many decoded."""

    def __init__(self, message: str, at_s: float, frames: int) -> None:
        super().__init__(message)
        self.at_s, self.frames = at_s, frames


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, read from its headers: size as shown (after rotation), rate, length, audio."""

    path: Path
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the stored frames are turned to be shown upright
    fps: Fraction  # average rate (variable-rate clips keep their own timestamps)
    duration_s: float
    frames: int  # from the header or duration x rate: an estimate until decoded
    has_audio: bool
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its number from 0, its time in seconds and pts, and RGB pixels (upright)."""

    index: int
    time_s: float
    pts: int
    pixels: np.ndarray  # (H, W, 3) uint8


def probe(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Open the clip's headers and check it against ``limits``: one clear :class:`BadVideoError` if unusable."""
    import av

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise BadVideoError(f"{name}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kind = "audio only" if container.streams.audio else "no video stream"
                raise BadVideoError(f"{name}: {kind}; a clip with a picture is needed")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = 0.0
            frames = int(stream.frames) or round(duration * float(fps))
            rotation = _rotation(path, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            if rotation % 180:
                width, height = height, width
            info = VideoInfo(
                path, width, height, rotation, fps, duration, frames, bool(container.streams.audio), stream.codec.name
            )
    except BadVideoError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise BadVideoError(f"{name}: not a video FFmpeg can read ({first_line(err)})") from None
    if width <= 0 or height <= 0 or fps <= 0:
        raise BadVideoError(f"{name}: the video stream has no frames")
    _check_limits(info, limits or VideoLimits())
    return info


def _check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    limits.validate()
    name = info.path.name
    if info.duration_s > limits.max_seconds:
        raise BadVideoError(f"{name}: {info.duration_s:.1f} s is longer than the {limits.max_seconds:g} s allowed")
    if info.frames > limits.max_frames:
        raise BadVideoError(f"{name}: {info.frames} frames is more than the {limits.max_frames} allowed")
    if info.width * info.height > limits.max_pixels:
        raise BadVideoError(
            f"{name}: {info.width}x{info.height} frames are larger than the {limits.max_pixels:,} pixels allowed"
        )


def read_frames(info: VideoInfo, *, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Frames ``start`` to ``stop`` (exclusive) in order, upright RGB; decoding past ``start`` costs only decode time.

    A stream that breaks part-way raises :class:`CorruptVideoError` after the last good frame, so a
    caller can keep what it made and say where the clip broke.
    """
    import av

    index, last_time = 0, 0.0
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 1)
        first_pts: int | None = None
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    return
                pts = frame.pts if frame.pts is not None else index
                first_pts = pts if first_pts is None else first_pts
                last_time = float((pts - first_pts) * time_base)
                if index >= start:
                    pixels = frame.to_ndarray(format="rgb24")
                    yield Frame(index, last_time, pts - first_pts, _upright(pixels, info.rotation))
                index += 1
        except av.error.FFmpegError as err:
            raise CorruptVideoError(
                f"{info.path.name}: the stream is corrupt after {last_time:.2f} s (frame {index}): {first_line(err)}",
                last_time,
                index,
            ) from None
    if index == 0:
        raise BadVideoError(f"{info.path.name}: the video stream has no frames")
    frame_s = 1 / float(info.fps)
    if stop is None and info.duration_s - last_time > max(TRUNCATED_SLACK_S, 3 * frame_s):
        raise CorruptVideoError(
            f"{info.path.name}: the stream breaks off at {last_time:.2f} s of the {info.duration_s:.2f} s "
            "its header gives (a cut or damaged file)",
            last_time,
            index,
        )


class VideoWriter:
    """Writes frames as they come: H.264 MP4 with the input's audio, FFV1 (.mkv) or PNG frames (a folder).

    The output has the input's time base and each frame's own pts, so frame rate and duration are kept;
    audio packets are copied in step with the video (interleaved, nothing held back), up to the last
    frame written, so a clip cut short keeps its sound in sync.
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo, *, audio: bool = True) -> None:
        import av

        self.path, self.info = Path(path), info
        self.format = output_format(self.path)
        self.frames = 0
        self._last_pts = -1
        self._container: Any = None
        self._audio_in: Any = None
        if self.format == "png":
            self.path.mkdir(parents=True, exist_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(info.path)) as source:
            in_video = source.streams.video[0]
            self._time_base = in_video.time_base or Fraction(1, int(info.fps) or 25)
        self._container = av.open(str(self.path), "w")
        rate = info.fps.limit_denominator(100000)
        if self.format == "mp4":
            stream = self._container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "medium"}
        else:
            stream = self._container.add_stream("ffv1", rate=rate)
            stream.pix_fmt = "bgr0"
        stream.width, stream.height = _even(info.width, self.format), _even(info.height, self.format)
        stream.time_base = stream.codec_context.time_base = self._time_base  # each frame keeps its own time
        self._video = stream
        if audio and info.has_audio:
            self._open_audio()

    def _open_audio(self) -> None:
        import av

        self._audio_in = av.open(str(self.info.path))
        in_audio = self._audio_in.streams.audio[0]
        self._transcode = self.format == "mp4" and in_audio.codec_context.name not in MP4_AUDIO_COPY
        if self._transcode:
            self._audio = self._container.add_stream("aac", rate=in_audio.codec_context.sample_rate or 48000)
            self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=self._audio.rate)
        else:
            self._audio = self._container.add_stream_from_template(in_audio)
        self._audio_time_base = in_audio.time_base
        self._audio_packets = self._audio_in.demux(in_audio)
        self._audio_start: int | None = None
        self._pending: Any = None

    def write(self, frame: Frame, pixels: np.ndarray) -> None:
        """Write ``pixels`` (upright RGB, the input's size) at ``frame``'s time."""
        import av

        self.frames += 1
        if self.format == "png":
            from PIL import Image

            Image.fromarray(pixels).save(self.path / f"{frame.index:06d}.png", compress_level=1)
            return
        pts = max(frame.pts, self._last_pts + 1)  # a muxer refuses repeated timestamps
        self._last_pts = pts
        height, width = self._video.height, self._video.width
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:height, :width]), format="rgb24")
        video_frame.pts, video_frame.time_base = pts, self._time_base
        for packet in self._video.encode(video_frame):
            self._container.mux(packet)
        if self._audio_in is not None:
            self._copy_audio(float(pts * self._time_base) + 1 / float(self.info.fps))

    def _copy_audio(self, until_s: float) -> None:
        """Mux the input's audio up to ``until_s`` seconds (the end of the last video frame written)."""
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                packet = next(self._audio_packets, None)
                if packet is None:
                    return
            if packet.pts is None:
                continue
            if self._audio_start is None:
                self._audio_start = packet.pts
            if float((packet.pts - self._audio_start) * self._audio_time_base) >= until_s:
                self._pending = packet
                return
            packet.pts -= self._audio_start
            if packet.dts is not None:
                packet.dts -= self._audio_start
            if self._transcode:
                for decoded in packet.decode():
                    decoded.pts = None
                    for resampled in self._resampler.resample(decoded):
                        for out in self._audio.encode(resampled):
                            self._container.mux(out)
            else:
                packet.stream = self._audio
                self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file (also after a cancel or a corrupt input: what was written stays)."""
        if self._container is None:
            return
        for packet in self._video.encode():
            self._container.mux(packet)
        if self._audio_in is not None:
            if self._transcode:
                for out in self._audio.encode():
                    self._container.mux(out)
            self._audio_in.close()
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def output_format(path: Path) -> str:
    """``mp4`` (H.264), ``ffv1`` (.mkv, lossless) or ``png`` (a folder, no suffix) from the output's name."""
    suffix = path.suffix.lower()
    if suffix in ("", "/"):
        return "png"
    if suffix == ".mkv":
        return "ffv1"
    if suffix in (".mp4", ".mov"):
        return "mp4"
    raise BadVideoError(f"{path.name}: write .mp4 (H.264), .mkv (lossless FFV1) or a folder for PNG frames")


def check_video_name(path: Path) -> None:
    """Refuse names that are not clips before opening them (an upload's name is the user's claim)."""
    if path.suffix.lower().lstrip(".") not in VIDEO_FORMATS:
        raise BadVideoError(f"{path.name}: a clip must be one of {', '.join(VIDEO_FORMATS)}")


def _even(side: int, fmt: str) -> int:
    """yuv420p needs even sides: drop the last row/column (one pixel) rather than scale the picture."""
    return side - side % 2 if fmt == "mp4" else side


def _rotation(path: Path, stream: Any) -> int:
    """Degrees (0, 90, 180, 270) the stored frames turn counter-clockwise to be upright, from metadata.

    Old files carry a clockwise ``rotate`` tag; newer ones a display matrix that FFmpeg hands out on
    decoded frames, so the first frame is decoded in a container of its own (no seeking back).
    """
    import av

    tag = stream.metadata.get("rotate")
    if tag is not None:
        angle = -float(tag)
    else:
        try:
            with av.open(str(path)) as peek:
                frame = next(peek.decode(video=0), None)
                angle = float(getattr(frame, "rotation", 0) or 0)
        except (av.error.FFmpegError, ValueError):  # a clip that fails here fails clearly when read
            angle = 0.0
    return int(round(angle / 90)) * 90 % 360


def _upright(pixels: np.ndarray, rotation: int) -> np.ndarray:
    return pixels if rotation == 0 else np.ascontiguousarray(np.rot90(pixels, rotation // 90))
