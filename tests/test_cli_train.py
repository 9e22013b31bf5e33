"""``python -m faceswap_core train``: a real run on the tiny model, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from faceswap_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--resolution", "64", "--rank", "2", "--no-samples", "--device", "cpu"]


@pytest.fixture
def dataset(tmp_path: Path, astronaut: Image.Image) -> Path:
    folder = tmp_path / "dataset"
    folder.mkdir()
    astronaut.crop((130, 20, 330, 220)).resize((64, 64)).save(folder / "a.png")
    (folder / "metadata.csv").write_text("file_name,text\na.png,a photo of a woman face\n")
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faceswap_core", "train", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_missing_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _cli(str(tmp_path / "nope"), "-o", "anna", "--lora-dir", str(tmp_path), "--base", "unused")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "nope" in done.stderr and "no such dataset" in done.stderr
    assert "Traceback" not in done.stderr


def test_offline_hub_model_is_one_line_and_exit_2(dataset: Path, tmp_path: Path) -> None:
    """Library logging (hub retries, load bars, warnings) must not add lines to the one-line error."""
    done = subprocess.run(
        [sys.executable, "-m", "faceswap_core", "train", str(dataset), "-o", "anna", "--lora-dir", str(tmp_path)]
        + ["--base", "nobody/no-such-sdxl", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "hf download nobody/no-such-sdxl" in done.stderr


@pytest.mark.parametrize("name", ["../up", ".hidden", "bad name"])
def test_bad_name_exits_2(name: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(dataset), "-o", name, "--lora-dir", str(tmp_path / "loras"), "--base", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "loras").exists() or not any((tmp_path / "loras").iterdir())


def test_out_of_range_setting_exits_2(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(dataset), "-o", "anna", "--lora-dir", str(tmp_path), "--rank", "0"]) == 2
    assert "rank must be between" in capsys.readouterr().err


def test_train_then_resume(tiny_model_dir: Path, dataset: Path, tmp_path: Path, capsys) -> None:
    lora_dir = tmp_path / "loras"
    args = ["train", str(dataset), "-o", "anna", "--base", str(tiny_model_dir), "--lora-dir", str(lora_dir), *TINY]
    assert main([*args, "--steps", "2", "--checkpoint-every", "1"]) == 0
    out = capsys.readouterr()
    weights = lora_dir / "anna" / "pytorch_lora_weights.safetensors"
    assert out.out.strip() == str(weights) and weights.is_file()
    assert "training" in out.err  # the tqdm bar
    assert main([*args, "--steps", "3"]) == 2  # never silently overwritten
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--steps", "3", "--resume"]) == 0
    record = json.loads((lora_dir / "anna" / "training.json").read_text())
    assert record["steps_done"] == 3 and len(record["losses"]) == 3
    assert [c["step"] for c in record["checkpoints"]] == [1, 2, 3]


def test_output_with_a_slash_is_a_folder(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "bob"
    code = main(["train", str(dataset), "-o", str(target), "--base", str(tiny_model_dir), "--steps", "1", *TINY])
    assert code == 0 and (target / "pytorch_lora_weights.safetensors").is_file()
