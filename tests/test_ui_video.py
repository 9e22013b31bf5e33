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


def test_keep_expression_is_checked_reaches_the_frame_and_zero_is_off(
    handlers: VideoHandlers, clip: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The Swap in a video tab's Keep expression switch and weight, as the /swap_video and /video_preview endpoints
    take them: a bad weight is one line, weight 0 is the switch off, a weight holds the frame with the ControlNet."""
    from faceswap_core.conditioning.controlnet import save_tiny_controlnet
    from faceswap_core.engine import Engine
    from faceswap_core.settings import ModelSpec
    from faceswap_core.ui.video import VIDEO_STRENGTH, video_strength

    fields = (["1"], 0, "", None, 0.3, 5, False)
    with pytest.raises(gr.Error, match="keep expression weight must be between 0 and 1.5"):
        user_errors(handlers.run)(clip, *fields, True, 7.0, progress=lambda *args, **kwargs: None)
    with pytest.raises(gr.Error, match="keep expression weight must be a number"):
        user_errors(handlers.preview)(clip, *fields, True, "lots")
    off = handlers.preview(clip, *fields, False, 0.6)
    assert handlers.preview(clip, *fields, True, 0.0).tobytes() == off.tobytes()  # nothing loaded, nothing changed
    controlnet = save_tiny_controlnet(tmp_path / "controlnet", tiny_model_dir, seed=1)
    spec = ModelSpec(str(tiny_model_dir), device="cpu", controlnet=str(controlnet))
    held = VideoHandlers(Engine(spec, lora_dir=tmp_path, allow_paths=False))
    assert held.preview(clip, *fields, False, 0.6).tobytes() == off.tobytes()
    assert held.preview(clip, *fields, True, 0.6).tobytes() != off.tobytes()
    assert video_strength(True) > video_strength(False) == VIDEO_STRENGTH
