"""``python -m faceswap_core swap`` on the tiny model: outputs, PNG parameters, ranking files, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.images import png_metadata

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "astronaut.jpg"
    astronaut.crop((100, 0, 403, 301)).save(path, quality=95)  # an odd size, 303x301
    return path


@pytest.fixture(scope="module")
def mask_file(photo: Path) -> Path:
    mask = Image.new("L", Image.open(photo).size, 0)
    mask.paste(255, (60, 40, 180, 170))
    path = photo.with_name("mask.png")
    mask.save(path)
    return path


def test_swap_writes_image_with_parameters(
    tiny_model_dir: Path, photo: Path, mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    args = ["swap", str(photo), "-o", str(out), "--base", str(tiny_model_dir), "--mask", str(mask_file)]
    assert main([*args, "--steps", "6", "--seed", "3", "--device", "cpu", "--strength", "0.6"]) == 0
    with Image.open(out) as result:
        assert result.size == (303, 301)
    parameters = json.loads(png_metadata(out)["parameters"])
    [face] = parameters["faces"]
    assert face["seed"] == 3 and face["strength"] == 0.6
    assert parameters["base_model"] == str(tiny_model_dir) and face["mask"] == "given" and face["face"] is None
    printed = json.loads(capsys.readouterr().out)
    assert printed["output"] == str(out) and printed["faces"][0]["seed"] == 3


def test_landmarks_and_occlusion_switches(
    tiny_model_dir: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    args = ["swap", str(photo), "-o", str(out), "--base", str(tiny_model_dir), "--device", "cpu", "--steps", "2"]
    assert main([*args, "--landmarks", "dlib", "--no-occlusion"]) == 0
    assert json.loads(png_metadata(out)["parameters"])["landmarks"] == "dlib"
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*args, "--landmarks", "insightface"])
    assert info.value.code == 2 and "invalid choice: 'insightface'" in capsys.readouterr().err


def test_strengths_write_ranked_candidates(
    tiny_model_dir: Path, photo: Path, mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_test_lora(tiny_model_dir, tmp_path / "loras" / "alice", seed=1)
    out = tmp_path / "best.png"
    args = ["swap", str(photo), "-o", str(out), "--base", str(tiny_model_dir), "--mask", str(mask_file)]
    args += ["--strengths", "0.3,0.6", "--steps", "6", "--lora", "alice", "--lora-dir", str(tmp_path / "loras")]
    assert main([*args, "--lora-scale", "0.8", "--seed", "1"]) == 0
    ranking = json.loads(capsys.readouterr().out)["ranking"]
    assert [entry["strength"] for entry in ranking] == [0.3, 0.6]
    assert (tmp_path / "best-0-s0.3.png").is_file() and (tmp_path / "best-1-s0.6.png").is_file()
    best = json.loads(png_metadata(out)["parameters"])
    assert best["faces"][0]["lora"] == "alice" and best["faces"][0]["lora_scale"] == 0.8 and best["rank"] == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "best-0-s0.3.png")))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lora", "evil.pt"], "pickle"),
        (["--base", "./missing-folder/model"], "no such folder"),
        (["--strength", "7"], "strength must be between"),
        (["--mask", "absent-mask.png"], "absent-mask.png"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    tiny_model_dir: Path,
    photo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.zeros(1)}, tmp_path / "evil.pt")
    args = ["swap", str(photo), "-o", str(tmp_path / "o.png"), "--base", str(tiny_model_dir), "--steps", "4"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o.png").exists()


def test_offline_hub_model_exits_2_with_a_fix(photo: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "faceswap_core", "swap", str(photo), "-o", str(tmp_path / "o.png")]
    run = subprocess.run(
        [*command, "--base", "nobody/no-such-sdxl", "--mask", str(photo)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "hf download nobody/no-such-sdxl" in run.stderr


def test_help_lists_the_issue_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["swap", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--base", "--lora", "--lora-scale", "--mask", "--face", "--prompt", "--strength", "--strengths"):
        assert flag in text
    for flag in ("--reference", "--padding", "--steps", "--guidance", "--seed", "--lora-dir", "--low-vram"):
        assert flag in text


def test_references_rank_candidates_by_identity(
    tiny_model_dir: Path,
    seed_targets: dict[str, Path],
    seed_sources: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "ranked.png"
    args = ["swap", str(seed_targets["B"]), "-o", str(out), "--base", str(tiny_model_dir), "--steps", "6"]
    smallest = sorted(seed_sources, key=lambda path: path.stat().st_size)[:2]
    args += ["--strengths", "0.4,0.9", "--reference", *map(str, smallest), "--seed", "2"]
    assert main(args) == 0
    ranking = json.loads(capsys.readouterr().out)["ranking"]
    distances = [entry["identity_distance"] for entry in ranking]
    assert None not in distances and distances == sorted(distances)
    assert json.loads(png_metadata(out)["parameters"])["identity_distance"] == distances[0]
