"""The LoRA registry: layouts, names, metadata, and refusing pickles without ever unpickling them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lora_factory import make_test_lora

from faceswap_core.errors import ModelLoadError, UnsafeWeightsError
from faceswap_core.loras import LoraRegistry, check_safe_weights


@pytest.fixture(scope="module")
def lora_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_lora(tiny_model_dir, tmp_path_factory.mktemp("lora"), seed=1)


@pytest.fixture()
def lora_dir(tmp_path: Path, lora_file: Path) -> Path:
    """alice (trained, with training.json and two checkpoints), kohya-style single file, and pickles."""
    root = tmp_path / "lora_weights"
    (root / "alice" / "checkpoint-100").mkdir(parents=True)
    (root / "alice" / "checkpoint-50").mkdir()
    for target in ("alice", "alice/checkpoint-100", "alice/checkpoint-50"):
        shutil.copy(lora_file, root / target / "pytorch_lora_weights.safetensors")
    (root / "alice" / "training.json").write_text(json.dumps({"base_model": "tiny", "steps": 100}))
    shutil.copy(lora_file, root / "kohya_style.safetensors")
    torch.save({"weight": torch.zeros(2)}, root / "evil.bin")
    (root / "bob").mkdir()
    torch.save({"weight": torch.zeros(2)}, root / "bob" / "pytorch_lora_weights.bin")
    shutil.copy(root / "evil.bin", root / "renamed.safetensors")
    return root


def test_list_finds_every_layout_and_skips_pickles(lora_dir: Path) -> None:
    infos = {info.name: info for info in LoraRegistry(lora_dir).list()}
    assert list(infos) == ["alice", "alice/checkpoint-100", "alice/checkpoint-50", "kohya_style"]
    assert infos["alice"].metadata == {"base_model": "tiny", "steps": 100}
    assert infos["alice/checkpoint-50"].metadata["checkpoint_step"] == 50
    assert infos["kohya_style"].path == lora_dir / "kohya_style.safetensors"
    assert LoraRegistry(lora_dir / "absent").list() == []


def test_resolve_by_name_and_by_path(lora_dir: Path) -> None:
    registry = LoraRegistry(lora_dir)
    assert registry.resolve("alice").path == lora_dir / "alice" / "pytorch_lora_weights.safetensors"
    assert registry.resolve("alice/checkpoint-100").metadata["steps"] == 100
    assert registry.resolve("kohya_style").path.name == "kohya_style.safetensors"
    by_path = registry.resolve(str(lora_dir / "alice" / "checkpoint-50"))
    assert by_path.name == "alice/checkpoint-50" and by_path.metadata["checkpoint_step"] == 50
    assert registry.resolve(str(lora_dir / "kohya_style.safetensors")).name == "kohya_style"


def test_resolve_errors_name_the_problem(lora_dir: Path) -> None:
    registry = LoraRegistry(lora_dir)
    with pytest.raises(ModelLoadError, match="available: alice"):
        registry.resolve("carol")
    with pytest.raises(ModelLoadError, match="not a valid LoRA name"):
        registry.resolve("../no-such-dir/x")
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        registry.resolve("evil")
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        registry.resolve("bob")
    with pytest.raises(UnsafeWeightsError, match="content is a pickle"):
        registry.resolve("renamed")


def test_check_safe_weights_never_unpickles(lora_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    check_safe_weights(lora_dir / "alice" / "pytorch_lora_weights.safetensors")
    for bad in ("evil.bin", "renamed.safetensors"):
        with pytest.raises(UnsafeWeightsError):
            check_safe_weights(lora_dir / bad)
    garbage = lora_dir / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(UnsafeWeightsError, match="not a safetensors file"):
        check_safe_weights(garbage)
    with pytest.raises(UnsafeWeightsError, match="only .safetensors"):
        check_safe_weights(lora_dir / "alice" / "training.json")


def test_steps_done_is_what_the_checkpoints_show_when_the_record_is_behind(lora_dir: Path) -> None:
    record = lora_dir / "alice" / "training.json"
    record.write_text(json.dumps({"base_model": "tiny", "steps_done": 50}))  # killed before the record's next write
    infos = {info.name: info for info in LoraRegistry(lora_dir).list()}
    assert infos["alice"].metadata["steps_done"] == 100
    assert infos["alice/checkpoint-50"].metadata["checkpoint_step"] == 50
