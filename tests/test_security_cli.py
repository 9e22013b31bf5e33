"""Issue 9 through the command line and the library: one-line errors, atomic writes, the smaller holes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lora_factory import make_test_lora
from PIL import Image
from safetensors.torch import load_file, save_file

from faceswap_core.errors import NoFaceError, SettingsError
from faceswap_core.faces.detect import find_face
from faceswap_core.loras import LoraRegistry

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "faceswap_core", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def photo(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-photo") / "astronaut.png"
    astronaut.save(path)
    return path


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``wrong``: right names, wrong shapes (trained on another model); ``cut``: data missing."""
    folder = tmp_path_factory.mktemp("cli-loras")
    good = make_test_lora(tiny_model_dir, folder / "good", seed=1)
    tensors = load_file(good)
    wrong = {key: torch.zeros(v.shape[0], v.shape[1] + 8) if ".down." in key else v for key, v in tensors.items()}
    save_file(wrong, folder / "wrong.safetensors")
    data = good.read_bytes()
    (folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def test_a_5000_character_lora_name_is_one_line(tiny_model_dir: Path, photo: Path, tmp_path: Path) -> None:
    result = cli("swap", str(photo), "-o", str(tmp_path / "o.png"), "--base", str(tiny_model_dir), "--lora", "a" * 5000)
    assert "too long" in one_line_error(result)


def test_an_unwritable_output_fails_before_any_work(photo: Path, tmp_path: Path) -> None:
    # The base model does not exist either: the output is checked first, before anything loads.
    result = cli("swap", str(photo), "-o", "/proc/x.png", "--base", str(tmp_path / "no-model"), "--device", "cpu")
    assert "/proc/x.png" in one_line_error(result)


def test_a_lora_of_the_wrong_shapes_is_one_line(tiny_model_dir: Path, photo: Path, lora_dir: Path, tmp_path: Path):
    args = ["swap", str(photo), "-o", str(tmp_path / "o.png"), "--base", str(tiny_model_dir), "--mask", "auto"]
    result = cli(*args, "--lora", "wrong", "--lora-dir", str(lora_dir), "--steps", "2", "--device", "cpu")
    assert "does not fit this base model" in one_line_error(result)


def test_a_corrupt_exif_block_adds_no_warning(tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    raw = exif.tobytes()
    broken = raw[:10] + b"\xff" * 40  # the IFD says more entries than there are bytes
    photo = tmp_path / "broken-exif.jpg"
    astronaut.save(photo, exif=broken, quality=90)
    mask = Image.new("L", astronaut.size, 0)
    mask.paste(255, (180, 80, 330, 260))
    mask.save(tmp_path / "mask.png")
    args = ["swap", str(photo), "-o", str(tmp_path / "o.png"), "--base", str(tiny_model_dir)]
    result = cli(*args, "--mask", str(tmp_path / "mask.png"), "--steps", "2", "--device", "cpu", "--seed", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.strip() == ""


def test_a_mask_on_an_exif_rotated_photo_is_announced_and_applied_upright(
    tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    import numpy as np

    upright = astronaut.crop((0, 0, 256, 256))
    stored = upright.rotate(180)  # what the camera wrote; EXIF orientation 3 turns it back upright
    exif = Image.Exif()
    exif[0x0112] = 3
    photo = tmp_path / "rotated.png"
    stored.save(photo, exif=exif.tobytes())
    mask = Image.new("L", upright.size, 0)
    mask.paste(255, (0, 0, 100, 100))  # top-left of the photo as viewers show it
    mask.save(tmp_path / "mask.png")
    out = tmp_path / "o.png"
    args = ["swap", str(photo), "-o", str(out), "--base", str(tiny_model_dir), "--mask", str(tmp_path / "mask.png")]
    result = cli(*args, "--steps", "2", "--device", "cpu", "--seed", "1", "--strength", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EXIF orientation 3" in result.stderr and "upright" in result.stderr
    changed = np.any(np.asarray(Image.open(out).convert("RGB")) != np.asarray(upright), axis=2)
    assert changed[:100, :100].any() and not changed[100:, :].any() and not changed[:, 100:].any()


def test_a_truncated_safetensors_file_is_not_pickable(lora_dir: Path) -> None:
    names = LoraRegistry(lora_dir).names()
    assert "good" in names and "cut" not in names


def test_no_face_message_names_the_image_once(astronaut: Image.Image) -> None:
    blank = Image.new("RGB", (200, 200), (120, 120, 120))
    with pytest.raises(NoFaceError) as info:
        find_face(blank)
    assert "Image image" not in str(info.value) and str(info.value).startswith("image: no face found")


def test_atomic_writes_never_change_a_file_that_is_open(tmp_path: Path) -> None:
    """A reader holding the old file (an mmap, a download) keeps it: the new file is a new inode."""
    from faceswap_core.images import save_png
    from faceswap_core.training.checkpoints import read_training_json, write_training_json

    first = save_png(Image.new("RGB", (40, 40), "red"), tmp_path / "x.png")
    inode = first.stat().st_ino
    save_png(Image.new("RGB", (40, 40), "blue"), tmp_path / "x.png")
    assert first.stat().st_ino != inode and not list(tmp_path.glob(".*.tmp"))
    write_training_json(tmp_path, {"a": 1})
    inode = (tmp_path / "training.json").stat().st_ino
    write_training_json(tmp_path, {"a": 2})
    assert (tmp_path / "training.json").stat().st_ino != inode and read_training_json(tmp_path) == {"a": 2}


@pytest.mark.slow
def test_training_keeps_its_photos_and_resume_refuses_another_resolution(
    tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    import json

    from faceswap_core.prepare import prepare_dataset
    from faceswap_core.settings import TrainSettings
    from faceswap_core.training import train_lora

    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.save(photos / "a.png")
    dataset = tmp_path / "elsewhere"
    prepare_dataset([photos / "a.png"], dataset, size=256)
    settings = TrainSettings(steps=1, resolution=64, checkpoint_every=1, sample_every_checkpoint=False, rank=4)
    loras = tmp_path / "loras"
    train_lora(dataset, "zoe", base_model=str(tiny_model_dir), settings=settings, lora_dir=loras, device="cpu")
    record = json.loads((loras / "zoe" / "training.json").read_text())
    assert record["reference_photos"] == ["dataset/a.png"] and (loras / "zoe" / "dataset" / "a.png").is_file()
    import shutil

    shutil.rmtree(dataset)  # the app's temporary folder goes away; the LoRA keeps its photos
    from faceswap_core.loras import reference_photos

    assert reference_photos(LoraRegistry(loras).get("zoe")) == [loras / "zoe" / "dataset" / "a.png"]
    more = TrainSettings(steps=2, resolution=128, checkpoint_every=1, sample_every_checkpoint=False, rank=4)
    with pytest.raises(SettingsError, match="--resolution 64"):
        train_lora(photos, "zoe", base_model=str(tiny_model_dir), settings=more, lora_dir=loras, resume=True)
