"""Video: clips in and out, face tracks, the resumable job and the ``video`` command, on tiny synthetic clips."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_factory import around_face, camera_move, crossing, face_patch, write_clip

from faceswap_core.cli import main
from faceswap_core.errors import CancelledError
from faceswap_core.faces.track import FaceTracker, OneEuroFilter, fill_gaps
from faceswap_core.media import BadVideoError, CorruptVideoError, VideoWriter, probe, read_frames
from faceswap_core.settings import SwapSettings, VideoLimits
from faceswap_core.video import TrackPlan, VideoJob, VideoSettings, faces_at, swap_clip, swap_frame, track_seed

FAST = SwapSettings(steps=2, strength=0.5, seed=3)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    from faceswap_core.engine import Engine

    return Engine(str(tiny_model_dir))


@pytest.fixture(scope="module")
def face(astronaut: Image.Image) -> Image.Image:
    """The astronaut's head and shoulders: a face the detector finds in a 128 px frame."""
    return around_face(astronaut, 1.3)


@pytest.fixture(scope="module")
def pan_clip(tmp_path_factory: pytest.TempPathFactory, face: Image.Image) -> Path:
    """8 frames of a pan over the astronaut, at 12 fps with a sine-wave audio track."""
    return write_clip(tmp_path_factory.mktemp("clips") / "pan.mp4", camera_move(face, 8, size=128))


def decoded(path: Path) -> list[np.ndarray]:
    return [frame.pixels for frame in read_frames(probe(path))]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        [stream] = container.streams.audio
        return float(sum(packet.duration or 0 for packet in container.demux(stream)) * stream.time_base)


# --- media ---------------------------------------------------------------------------------------
def test_copy_keeps_frames_timing_and_audio_even_at_a_variable_rate(tmp_path: Path, astronaut: Image.Image) -> None:
    pts = [0, 10, 20, 50, 60, 90]  # 1/120 s units: gaps of 1, 3 and 3 frames
    clip = write_clip(tmp_path / "vfr.mp4", camera_move(astronaut, 6, size=96), pts=pts)
    info = probe(clip)
    out = tmp_path / "copy.mp4"
    with VideoWriter(out, info) as writer:
        for frame in read_frames(info):
            writer.write(frame, frame.pixels)
    copied = probe(out)
    assert [f.time_s for f in read_frames(copied)] == pytest.approx([p / 120 for p in pts])
    assert copied.duration_s == pytest.approx(info.duration_s, abs=1 / float(info.fps))  # the last frame's length
    assert copied.has_audio and audio_seconds(out) == pytest.approx(audio_seconds(clip), abs=0.07)


def test_rotation_metadata_turns_frames_upright(tmp_path: Path) -> None:
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        stored = np.zeros((32, 64, 3), dtype=np.uint8)
        stored[:, :8] = 255  # a white stripe on the stored frame's left edge
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    pixels = next(read_frames(info)).pixels
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    assert pixels.shape == (64, 32, 3) and pixels[-6:].mean() > 200 and pixels[:-10].mean() < 30


# --- tracks --------------------------------------------------------------------------------------
def test_one_euro_filter_steadies_jitter_and_follows_a_move() -> None:
    rng = np.random.default_rng(0)
    smoother = OneEuroFilter(30.0)
    still = [smoother(np.array([100.0 + rng.normal(0, 2)])) for _ in range(60)]
    assert np.std(still[20:]) < 0.5 * 2
    mover = OneEuroFilter(30.0)
    track = [mover(np.array([10.0 * step])) for step in range(60)]
    assert abs(track[-1][0] - 590.0) < 20  # little lag at 300 px/s


def test_gaps_up_to_the_limit_are_interpolated_longer_ones_left_empty() -> None:
    points = [np.full((68, 2), float(i)) for i in range(10)]
    landmarks: list[np.ndarray | None] = [points[0], None, None, points[3], None, None, None, None, None, points[9]]
    fill_gaps(landmarks, max_gap=3)
    assert landmarks[1] is not None and landmarks[1][0, 0] == pytest.approx(1.0)
    assert all(landmarks[i] is None for i in range(4, 9))


def test_track_keeps_its_person_through_a_miss_and_a_crossing(tmp_path: Path, seed_targets, astronaut) -> None:
    other = Image.open(seed_targets["A"])
    frames = crossing(face_patch(astronaut, 120), face_patch(other, 120), 14, width=360, height=150)
    frames[3][:] = 90  # a frame where no face is seen: filled in by interpolation
    clip = write_clip(tmp_path / "cross.mp4", frames, audio=False)
    _, faces = faces_at(probe(clip), 0.0)
    left = min(range(len(faces)), key=lambda i: faces[i].center[0])  # the astronaut starts on the left
    job = VideoJob(tmp_path / "job", clip, VideoSettings(swap=FAST, faces=(left,), smooth=False), None)
    job.track()
    [track] = job.tracks
    assert track[3] is not None  # the miss was filled
    first, last = track[0][:, 0].mean(), track[-1][:, 0].mean()
    assert first < 150 and last > 210  # crossed over to the right: followed the person, not the place


def test_tracker_lets_a_face_leave_and_come_back() -> None:
    from faceswap_core.faces.detect import Face

    descriptor = np.zeros(128)
    face = Face((10, 10, 50, 50), np.full((68, 2), 30.0), 1.0)
    tracker = FaceTracker([descriptor])
    for seen in [True, True, False, False, False, False, False, True]:
        tracker.update([face] if seen else [], lambda _face: descriptor)
    [track] = tracker.finish(fps=10.0, max_gap_s=0.2)
    assert [points is not None for points in track.landmarks] == [True, True, False, False, False, False, False, True]


# --- the job -------------------------------------------------------------------------------------
def test_lossless_output_keeps_frames_without_a_face_byte_exact(tmp_path: Path, engine, face) -> None:
    frames = camera_move(face, 8, size=128)
    for index in range(4, 8):
        frames[index] = np.full_like(frames[index], 60)  # the face leaves for good
    clip = write_clip(tmp_path / "leave.mp4", frames)
    out = tmp_path / "out.mkv"
    swap_clip(engine, clip, out, VideoSettings(swap=FAST, max_gap_s=0.1), job_folder=tmp_path / "job")
    source, result = decoded(clip), decoded(out)
    assert len(result) == 8 and probe(out).has_audio
    assert all(np.array_equal(source[i], result[i]) for i in range(4, 8))
    assert all(not np.array_equal(source[i], result[i]) for i in range(4))


def test_cancel_keeps_the_finished_frames_and_resume_matches_one_run(tmp_path: Path, engine, pan_clip) -> None:
    settings = VideoSettings(swap=FAST)
    whole = tmp_path / "whole.mkv"
    swap_clip(engine, pan_clip, whole, settings, job_folder=tmp_path / "job-whole")
    cancel = threading.Event()

    def stop_after_three(stage: str, done: int, total: int, left: float | None) -> None:
        if stage == "swapping" and done == 3:
            cancel.set()

    part = tmp_path / "part.mkv"
    with pytest.raises(CancelledError, match="after 3 of 8 frames"):
        swap_clip(
            engine, pan_clip, part, settings, job_folder=tmp_path / "job", progress=stop_after_three, cancel=cancel
        )
    assert len(decoded(part)) == 3
    swapped: list[int] = []
    swap_clip(
        engine,
        pan_clip,
        part,
        settings,
        job_folder=tmp_path / "job",
        progress=lambda stage, done, total, left: swapped.append(done),
    )
    assert swapped == [4, 5, 6, 7, 8]  # resumed after the last finished frame
    assert all(np.array_equal(a, b) for a, b in zip(decoded(part), decoded(whole), strict=True))


def test_mp4_output_keeps_frame_count_duration_and_audio(tmp_path: Path, engine, pan_clip) -> None:
    out = tmp_path / "out.mp4"
    swap_clip(engine, pan_clip, out, VideoSettings(swap=FAST, temporal_blend=0.0), job_folder=tmp_path / "job")
    source, result = probe(pan_clip), probe(out)
    assert len(decoded(out)) == 8 and result.duration_s == pytest.approx(source.duration_s, abs=1e-3)
    assert result.fps == source.fps
    assert audio_seconds(out) == pytest.approx(audio_seconds(pan_clip), abs=0.07)


def test_keep_expression_holds_every_frame_with_the_controlnet(
    tmp_path: Path, tiny_model_dir: Path, pan_clip: Path
) -> None:
    """On the tiny ControlNet: each frame is the photo path's repaint with the ControlNet on that frame's tracked
    landmarks (outside the mask the input, inside not the plain repaint), and the job records it."""
    from faceswap_core.conditioning.controlnet import save_tiny_controlnet
    from faceswap_core.engine import Engine
    from faceswap_core.faces.track import face_from_landmarks
    from faceswap_core.settings import ModelSpec

    controlnet = save_tiny_controlnet(tmp_path / "controlnet", tiny_model_dir, seed=1)
    engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu", controlnet=str(controlnet)))
    keep = VideoSettings(swap=replace(FAST, keep_expression=0.8), temporal_blend=0.0)
    on_job = swap_clip(engine, pan_clip, tmp_path / "on.mkv", keep, job_folder=tmp_path / "on")
    off = VideoSettings(swap=FAST, temporal_blend=0.0)
    off_job = swap_clip(engine, pan_clip, tmp_path / "off.mkv", off, job_folder=tmp_path / "off")
    source, on, plain = decoded(pan_clip), decoded(tmp_path / "on.mkv"), decoded(tmp_path / "off.mkv")
    assert len(on) == len(plain) == 8
    for index in (0, 5):
        plans = [
            TrackPlan(t, face_from_landmarks(track[index]), replace(keep.swap, seed=track_seed(FAST.seed, t)))
            for t, track in enumerate(on_job.tracks)
        ]
        frame, mask = swap_frame(engine, source[index], plans)
        assert np.array_equal(frame, on[index])
        outside, inside = np.asarray(mask) == 0, np.asarray(mask) == 255
        assert np.array_equal(on[index][outside], source[index][outside])
        assert np.array_equal(plain[index][outside], source[index][outside])
        assert np.abs(on[index][inside].astype(int) - plain[index][inside]).mean() > 1.0
    record = json.loads((tmp_path / "on" / "job.json").read_text())["settings"]
    assert record["swap"]["keep_expression"] == 0.8 and record["controlnet"] == str(controlnet)
    assert "controlnet" not in off_job.state.settings and off_job.state.settings["swap"]["keep_expression"] == 0.0


# --- bad input, through the command -----------------------------------------------------------------
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


def test_bad_clips_give_one_line_and_exit_2(tmp_path: Path, capsys, tiny_model_dir: Path, astronaut) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a clip")
    audio_only = tmp_path / "sound.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    long_clip = write_clip(tmp_path / "long.mp4", camera_move(astronaut, 8, size=64), audio=False)
    blank = write_clip(tmp_path / "blank.mp4", [np.full((64, 64, 3), 80, np.uint8)] * 4, audio=False)
    base = ["--base", str(tiny_model_dir), "--lora-dir", str(tmp_path)]
    cases = {
        text: ([], "not a video"),
        audio_only: ([], "audio only"),
        long_clip: (["--max-frames", "4"], "more than the 4 allowed"),
        blank: ([], "face"),
    }
    for clip, (extra, message) in cases.items():
        code, err = run_cli(["video", str(clip), "-o", str(tmp_path / "o.mp4"), *base, *extra], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and message in err, (clip.name, err)


def test_a_clip_cut_half_way_keeps_the_good_part_and_says_where(tmp_path: Path, engine, face) -> None:
    whole = write_clip(tmp_path / "whole.mkv", camera_move(face, 24, size=128))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptVideoError, match=r"corrupt after \d+\.\d\d s") as caught:
        swap_clip(engine, cut, tmp_path / "out.mkv", VideoSettings(swap=FAST), job_folder=tmp_path / "job")
    good = caught.value.frames
    assert 0 < good < 24 and len(decoded(tmp_path / "out.mkv")) == good


def test_a_bad_keep_expression_weight_is_one_line_and_exit_2(
    tmp_path: Path, capsys, tiny_model_dir: Path, pan_clip: Path
) -> None:
    base = ["video", str(pan_clip), "-o", str(tmp_path / "o.mp4"), "--base", str(tiny_model_dir)]
    code, err = run_cli([*base, "--keep-expression", "9"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "keep expression weight must be between 0 and 1.5" in err
    assert not (tmp_path / "o.mp4.job").exists()  # refused before any work


def test_probe_refuses_missing_files_and_long_clips(pan_clip: Path) -> None:
    with pytest.raises(BadVideoError, match="no such file"):
        probe("nowhere.mp4")
    with pytest.raises(BadVideoError, match="longer than the 0.5 s allowed"):
        probe(pan_clip, VideoLimits(max_seconds=0.5))


def test_command_swaps_a_clip_and_prints_its_record(tmp_path: Path, capsys, tiny_model_dir: Path, pan_clip) -> None:
    import json

    out = tmp_path / "out.mp4"
    base = ["--base", str(tiny_model_dir), "--lora-dir", str(tmp_path), "--steps", "2", "--strength", "0.5"]
    assert main(["video", str(pan_clip), "-o", str(out), *base]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["frames"] == 8 and len(record["seeds"]) == 1 and Path(record["job"]).is_dir()
    assert len(decoded(out)) == 8 and probe(out).has_audio


class LostAfter:
    """A frame swapper whose cluster goes away after ``count`` frames, as Ray's does when the head dies."""

    def __init__(self, engine, count: int) -> None:
        from faceswap_core.video import LocalFrames

        self.local = LocalFrames(engine)
        self.count = count

    def map(self, work, mask_settings, cancel):
        from faceswap_core.errors import ClusterError

        for done, item in enumerate(self.local.map(work, mask_settings, cancel)):
            if done == self.count:
                raise ClusterError("the Ray cluster failed during the clip (test); run it again to resume")
            yield item


def test_a_clip_whose_cluster_goes_away_resumes_to_one_runs_frames(tmp_path: Path, engine, pan_clip) -> None:
    from faceswap_core.errors import ClusterError

    settings = VideoSettings(swap=FAST)
    whole = tmp_path / "whole.mkv"
    swap_clip(engine, pan_clip, whole, settings, job_folder=tmp_path / "job-whole")
    out = tmp_path / "out.mkv"
    with pytest.raises(ClusterError, match="run it again to resume"):
        swap_clip(engine, pan_clip, out, settings, job_folder=tmp_path / "job", frames=LostAfter(engine, 5))
    assert VideoJob(tmp_path / "job", pan_clip, settings, None).state.done == 5  # what came back was kept
    swapped: list[int] = []
    swap_clip(
        engine,
        pan_clip,
        out,
        settings,
        job_folder=tmp_path / "job",
        progress=lambda stage, done, total, left: swapped.append(done),
    )
    assert swapped == [6, 7, 8]
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out), decoded(whole), strict=True))
