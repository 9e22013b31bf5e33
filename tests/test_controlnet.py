"""Keep expression: the ControlNet on the target's landmarks, on a tiny random SDXL and a tiny random ControlNet."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.conditioning.controlnet import crop_landmarks, dynamic_strength, face_map, save_tiny_controlnet
from faceswap_core.engine import Engine, FaceTarget
from faceswap_core.errors import ModelLoadError, SettingsError
from faceswap_core.fast import save_tiny_fast_lora
from faceswap_core.images import png_metadata
from faceswap_core.settings import (
    CONTROLNET_POSE_MODE,
    DYNAMIC_STRENGTH_GAIN,
    KEEP_EXPRESSION,
    ModelSpec,
    SwapSettings,
)

PLAIN = SwapSettings(steps=4, strength=0.9, seed=3, color_match=False)
KEEP = replace(PLAIN, keep_expression=0.8)


@pytest.fixture(scope="module")
def controlnet_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_controlnet(tmp_path_factory.mktemp("tiny-controlnet"), tiny_model_dir, seed=1)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, controlnet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    fast = save_tiny_fast_lora(tmp_path_factory.mktemp("lcm"), tiny_model_dir, seed=2)
    spec = ModelSpec(str(tiny_model_dir), device="cpu", controlnet=str(controlnet_dir), fast_lora=str(fast))
    return Engine(spec, lora_dir=tmp_path_factory.mktemp("loras"))


@pytest.fixture(scope="module")
def two_faces(astronaut: Image.Image) -> Image.Image:
    """Two copies of the astronaut side by side: two faces, no shared data needed."""
    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut.transpose(Image.FLIP_LEFT_RIGHT), (512, 0))
    return pair


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


def test_keep_expression_changes_only_the_inside_of_the_mask(engine: Engine, astronaut: Image.Image) -> None:
    off = engine.swap(astronaut, settings=PLAIN)
    on = engine.swap(astronaut, settings=KEEP)
    outside = np.asarray(on.mask) == 0
    assert np.array_equal(_pixels(on.image)[outside], _pixels(astronaut)[outside])
    assert np.array_equal(_pixels(off.image)[outside], _pixels(astronaut)[outside])
    inside = np.asarray(on.mask) == 255
    assert np.abs(_pixels(on.image)[inside] - _pixels(off.image)[inside]).mean() > 1.0
    face = on.record["faces"][0]
    assert face["keep_expression"] == 0.8
    assert face["controlnet"] == {"source": engine.model.controlnet, "weight": 0.8, "input": "face landmarks"}
    assert off.record["faces"][0]["keep_expression"] == 0.0 and "controlnet" not in off.record["faces"][0]


def test_a_union_controlnet_is_called_with_the_pose_control_mode(
    tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xinsir's union model takes a list of control images and a control type for each: OpenPose's for the face map."""
    from diffusers import StableDiffusionXLControlNetUnionInpaintPipeline as UnionPipeline

    union = save_tiny_controlnet(tmp_path / "union", tiny_model_dir, seed=1, union=True)
    engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu", controlnet=str(union)), lora_dir=tmp_path)
    calls: list[dict] = []
    original = UnionPipeline.__call__

    def spy(self: UnionPipeline, *args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UnionPipeline, "__call__", spy)
    on = engine.swap(astronaut, settings=KEEP)
    off = engine.swap(astronaut, settings=PLAIN)
    [call] = calls  # off ran on the plain inpainting pipeline
    assert call["control_mode"] == [CONTROLNET_POSE_MODE] and len(call["control_image"]) == 1
    outside = np.asarray(on.mask) == 0
    assert np.array_equal(_pixels(on.image)[outside], _pixels(astronaut)[outside])
    inside = np.asarray(on.mask) == 255
    assert np.abs(_pixels(on.image)[inside] - _pixels(off.image)[inside]).mean() > 1.0
    assert on.record["faces"][0]["controlnet"] == {
        "source": str(union),
        "weight": 0.8,
        "input": "face landmarks",
        "control_mode": CONTROLNET_POSE_MODE,
    }


def test_weight_zero_is_the_same_as_off(engine: Engine, astronaut: Image.Image) -> None:
    off = engine.swap(astronaut, settings=PLAIN)
    zero = engine.swap(astronaut, settings=replace(PLAIN, keep_expression=0.0))
    assert off.image.tobytes() == zero.image.tobytes()


def test_the_same_request_gives_the_same_bytes(engine: Engine, astronaut: Image.Image) -> None:
    first, again = (engine.swap(astronaut, settings=KEEP) for _ in range(2))
    assert first.image.tobytes() == again.image.tobytes()


def test_several_faces_each_get_their_own_landmarks(engine: Engine, two_faces: Image.Image) -> None:
    targets = [FaceTarget(KEEP, 0), FaceTarget(PLAIN, 1)]
    mixed = engine.swap(two_faces, targets)
    plain = engine.swap(two_faces, [FaceTarget(PLAIN, 0), FaceTarget(PLAIN, 1)])
    first, second = mixed.record["faces"]
    assert first["controlnet"]["input"] == "face landmarks"
    assert second["keep_expression"] == 0.0 and "controlnet" not in second
    outside = np.asarray(mixed.mask) == 0
    assert np.array_equal(_pixels(mixed.image)[outside], _pixels(two_faces)[outside])
    assert mixed.image.tobytes() != plain.image.tobytes()


def test_fast_mode_runs_its_few_steps_with_the_controlnet(engine: Engine, astronaut: Image.Image) -> None:
    fast = engine.swap(astronaut, settings=replace(KEEP, fast=True))
    fast_off = engine.swap(astronaut, settings=replace(PLAIN, fast=True))
    face = fast.record["faces"][0]
    assert (face["mode"], face["scheduler"]) == ("fast", "LCMScheduler")
    assert face["steps_run"] == fast_off.record["faces"][0]["steps_run"]
    assert face["controlnet"]["weight"] == 0.8
    assert fast.image.tobytes() != fast_off.image.tobytes()
    # the ControlNet pipeline's scheduler is the call's, and the resident one is back to its own afterwards
    assert type(engine.pipeline.scheduler).__name__ == "EulerDiscreteScheduler"


def test_a_painted_mask_without_a_face_runs_without_the_controlnet(engine: Engine) -> None:
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    mask = Image.new("L", (96, 96), 0)
    mask.paste(255, (20, 20, 76, 76))
    result = engine.swap(image, mask=mask, settings=KEEP)
    plain = engine.swap(image, mask=mask, settings=PLAIN)
    assert result.record["faces"][0]["controlnet"]["input"] == "none: no face under the mask"
    assert result.image.tobytes() == plain.image.tobytes()


def test_a_weight_out_of_range_is_refused() -> None:
    with pytest.raises(SettingsError, match="keep expression weight"):
        replace(PLAIN, keep_expression=3.0).validate()


def test_a_missing_controlnet_is_one_clear_error(tiny_model_dir: Path, tmp_path: Path, astronaut: Image.Image) -> None:
    spec = ModelSpec(str(tiny_model_dir), device="cpu", controlnet=str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="ControlNet"):
        Engine(spec, lora_dir=tmp_path).swap(astronaut, settings=KEEP)


def test_face_map_draws_the_landmarks_where_the_face_is(engine: Engine, astronaut: Image.Image) -> None:
    region = engine.prepare(astronaut, [FaceTarget(KEEP, 0)]).regions[0]
    points = crop_landmarks(region, 256)
    assert points is not None and points.min() >= 0 and points.max() < 256
    drawn = np.asarray(face_map(256, points).convert("L")) > 0
    x, y = points.mean(axis=0).round().astype(int)
    assert drawn.any() and not drawn[:, : int(points[:, 0].min()) - 3].any()
    assert drawn[y - 40 : y + 40, x - 40 : x + 40].any()


def test_dynamic_strength_raises_small_faces_only(engine: Engine, astronaut: Image.Image) -> None:
    region = engine.prepare(astronaut, [FaceTarget(KEEP, 0)]).regions[0]
    width = region.face.width
    assert dynamic_strength(0.5, region, native=int(width)) == 0.5  # the face fills the native side: kept
    small = dynamic_strength(0.5, region, native=int(width * 20))  # a tiny face in a big native crop
    assert 0.5 < small <= 0.5 + DYNAMIC_STRENGTH_GAIN
    assert dynamic_strength(0.95, region, native=int(width * 20)) == 1.0


def test_cli_keep_expression_records_the_controlnet(
    tiny_model_dir: Path,
    controlnet_dir: Path,
    astronaut: Image.Image,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo, out = tmp_path / "astronaut.png", tmp_path / "out.png"
    astronaut.save(photo)
    args = ["swap", str(photo), "-o", str(out), "--base", str(tiny_model_dir), "--device", "cpu", "--steps", "4"]
    assert main([*args, "--seed", "3", "--keep-expression", "--controlnet", str(controlnet_dir)]) == 0
    [face] = json.loads(png_metadata(out)["parameters"])["faces"]
    assert face["keep_expression"] == KEEP_EXPRESSION.default
    assert face["controlnet"] == {
        "source": str(controlnet_dir),
        "weight": KEEP_EXPRESSION.default,
        "input": "face landmarks",
    }
    capsys.readouterr()
    assert main([*args, "--keep-expression", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "keep expression weight must be between 0 and 1.5" in err


def test_the_api_and_the_swap_tab_take_keep_expression(engine: Engine, astronaut: Image.Image, tmp_path: Path) -> None:
    import gradio as gr

    from faceswap_core.ui.swap import SwapHandlers, _expression_strengths, parse_strengths

    photo = tmp_path / "astronaut.png"
    astronaut.save(photo)
    swap = SwapHandlers(engine)
    common = {"lora_scale": 1.0, "padding": 0.6, "steps": 4, "guidance": 5.0, "seed": 3}
    _, record = swap.api_swap(str(photo), None, "", prompt="", strength=0.9, keep_expression=0.7, **common)
    assert record["faces"][0]["controlnet"]["weight"] == 0.7 and record["faces"][0]["keep_expression"] == 0.7
    with pytest.raises(gr.Error, match="keep expression weight"):
        swap.api_swap(str(photo), None, "", prompt="", strength=0.9, keep_expression=7.0, **common)
    assert parse_strengths("", 0.0) == [0.3, 0.4, 0.5, 0.6]
    assert min(parse_strengths("", 0.6)) >= 0.6  # the ControlNet holds the expression: try higher strengths
    recommended, candidates = _expression_strengths(True)
    assert recommended > _expression_strengths(False)[0] and candidates.startswith("0.6")
