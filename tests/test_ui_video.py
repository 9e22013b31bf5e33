"""The Video tab's handlers (each one a public endpoint) on the tiny model and a synthetic clip."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from video_factory import around_face, camera_move, write_clip

from faceswap_core.media import probe, read_frames
from faceswap_core.ui.common import user_errors
from faceswap_core.ui.video import VideoHandlers


@pytest.fixture(scope="module")
def handlers(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> VideoHandlers:
    from faceswap_core.engine import Engine

    engine = Engine(str(tiny_model_dir), lora_dir=tmp_path_factory.mktemp("loras"), allow_paths=False)  # as the app
    return VideoHandlers(engine)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut: Image.Image) -> str:
    frames = camera_move(around_face(astronaut, 1.3), 6, size=128, kind="zoom")
    return str(write_clip(tmp_path_factory.mktemp("clip") / "zoom.mp4", frames))


def test_faces_preview_and_run(handlers: VideoHandlers, clip: str) -> None:
    frame, picker, summary = handlers.show_faces(clip, 0)
    assert frame.size == (128, 128) and "1 face(s)" in summary and "with sound" in summary
    fields = (["1"], 0, "", None, 0.3, 5, False)  # face 1, at 0 s, no person, no photo, strength, seed, fast
    after = handlers.preview(clip, *fields)
    first = next(read_frames(probe(clip))).pixels
    assert after.size == (128, 128) and not np.array_equal(np.asarray(after), first)
    video, download, message = handlers.run(clip, *fields, progress=lambda *args, **kwargs: None)
    assert video == download and len(list(read_frames(probe(video)))) == 6 and "6 frames" in message
    again = handlers.run(clip, *fields, progress=lambda *args, **kwargs: None)
    assert again[0] == video  # the same clip and settings: the finished job, not a second one


@pytest.mark.parametrize(
    ("clip_value", "fields", "message"),
    [
        (None, (["1"], 0, "", None, 0.5, 0, False), "upload a clip"),
        ("TEXT", (["1"], 0, "", None, 0.5, 0, False), "not a video"),
        ("CLIP", ([], 0, "", None, 0.5, 0, False), "tick at least one face"),
        ("CLIP", (["0"], 0, "", None, 0.5, 0, False), "start at 1"),
        ("CLIP", (["1"], 0, "", None, 7.0, 0, False), "strength must be between"),
        ("CLIP", (["1"], 0, "/etc/passwd", None, 0.5, 0, False), "person .passwd. not found"),
        ("CLIP", (["9"], 0, "", None, 0.5, 0, False), "there is no face 8"),
    ],
)
def test_bad_values_are_one_line_errors(
    handlers: VideoHandlers, clip: str, tmp_path: Path, clip_value, fields, message
) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    value = {"TEXT": str(text), "CLIP": clip}.get(clip_value, clip_value)
    with pytest.raises(gr.Error, match=message):
        user_errors(handlers.preview)(value, *fields)
