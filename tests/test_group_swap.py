"""Several faces in one photo, each with its own person: the engine, the mask split and the CLI's --face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.engine import Engine, FaceTarget
from faceswap_core.errors import NoFaceError, SettingsError
from faceswap_core.faces.detect import detect_faces
from faceswap_core.images import load_image, png_metadata
from faceswap_core.regions import split_mask
from faceswap_core.settings import ModelSpec, SwapSettings

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
QUICK = SwapSettings(steps=6, seed=11, color_match=False)


@pytest.fixture(scope="module")
def two_people() -> Image.Image:
    path = PEOPLE / "two_people.jpg"
    if not path.is_file():
        pytest.skip("shared photos of two people not present")
    return load_image(path)


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loras")
    make_test_lora(tiny_model_dir, root / "alice", seed=1)
    make_test_lora(tiny_model_dir, root / "bob", seed=2)
    return root


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, lora_dir: Path) -> Engine:
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=lora_dir)


def _as(settings: SwapSettings, lora: str | None) -> SwapSettings:
    return SwapSettings(**{**settings.__dict__, "lora": lora})


def test_two_faces_each_repainted_with_its_own_lora(engine: Engine, two_people: Image.Image) -> None:
    pair = engine.swap(two_people, [FaceTarget(_as(QUICK, "alice"), 0), FaceTarget(_as(QUICK, "bob"), 1)])
    both_alice = engine.swap(two_people, [FaceTarget(_as(QUICK, "alice"), 0), FaceTarget(_as(QUICK, "alice"), 1)])
    both_bob = engine.swap(two_people, [FaceTarget(_as(QUICK, "bob"), 0), FaceTarget(_as(QUICK, "bob"), 1)])
    faces = detect_faces(two_people)
    original, result = np.asarray(two_people), np.asarray(pair.image)

    def inside(face_index: int) -> np.ndarray:
        x0, y0, x1, y1 = (round(v) for v in faces[face_index].box)
        region = np.zeros(original.shape[:2], dtype=bool)
        region[y0:y1, x0:x1] = True
        return region & (np.asarray(pair.mask) == 255)

    first, second = inside(0), inside(1)
    # Face 0 is alice's (as when both are alice, not as when both are bob); face 1 is bob's.
    assert np.array_equal(result[first], np.asarray(both_alice.image)[first])
    assert not np.array_equal(result[first], np.asarray(both_bob.image)[first])
    assert not np.array_equal(result[second], np.asarray(both_alice.image)[second])
    assert (result[first] != original[first]).any() and (result[second] != original[second]).any()
    outside = np.asarray(pair.mask) == 0
    assert np.array_equal(result[outside], original[outside])  # byte-identical outside the union
    record = pair.record
    assert [(f["face"], f["lora"], f["seed"]) for f in record["faces"]] == [(0, "alice", 11), (1, "bob", 11)]
    assert [f["adapters"] for f in record["faces"]] == [
        [{"lora": "alice", "weight": 1.0}],
        [{"lora": "bob", "weight": 1.0}],
    ]
    left, right = (record["faces"][i]["crop_box"] for i in (0, 1))
    assert left != right and all(f["mask"] == "auto" for f in record["faces"])


def test_an_index_that_does_not_exist_names_how_many_faces_there_are(engine: Engine, two_people: Image.Image) -> None:
    with pytest.raises(NoFaceError, match=r"no face 5; 2 faces found \(indices 0-1\)"):
        engine.swap(two_people, [FaceTarget(QUICK, 0), FaceTarget(QUICK, 5)])
    with pytest.raises(SettingsError, match="at least one face"):
        engine.swap(two_people, [])


def test_one_painted_mask_is_shared_by_the_nearest_faces(two_people: Image.Image) -> None:
    faces = detect_faces(two_people)
    painted = Image.new("L", two_people.size, 0)
    painted.paste(200, (100, 20, 1100, 300))  # one stroke across both faces
    shares = [np.asarray(share, dtype=np.int16) for share in split_mask(painted, faces)]
    values = np.asarray(painted, dtype=np.int16)
    assert np.array_equal(np.maximum(*shares), values)  # every painted pixel fully belongs to its nearest face
    assert (shares[0] + shares[1] >= values).all()
    for face, share in zip(faces, shares, strict=True):
        cx, cy = (round(v) for v in face.center)
        assert share[cy, cx] == 200  # each face keeps its own centre
    # Where the two meet, the farther face fades out over a band instead of stopping at a hard line.
    steps = np.abs(np.diff(shares[0][150, 100:1100]))
    assert 0 < steps.max() < 50


def test_painted_mask_with_two_faces_replaces_only_what_is_painted(engine: Engine, two_people: Image.Image) -> None:
    painted = Image.new("L", two_people.size, 0)
    painted.paste(255, (250, 80, 400, 220))
    painted.paste(255, (800, 90, 950, 230))
    result = engine.swap(
        two_people, [FaceTarget(_as(QUICK, "alice"), 0), FaceTarget(_as(QUICK, "bob"), 1)], mask=painted
    )
    outside = np.asarray(painted) == 0
    assert np.array_equal(np.asarray(result.image)[outside], np.asarray(two_people)[outside])
    assert [(f["face"], f["mask"]) for f in result.record["faces"]] == [(0, "given"), (1, "given")]


def test_cli_face_specs(tiny_model_dir: Path, lora_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = PEOPLE / "two_people.jpg"
    if not target.is_file():
        pytest.skip("shared photos of two people not present")
    out = tmp_path / "group.png"
    common = ["swap", str(target), "-o", str(out), "--base", str(tiny_model_dir), "--device", "cpu"]
    common += ["--lora-dir", str(lora_dir), "--steps", "4", "--seed", "2"]
    assert main([*common, "--face", "1:bob", "--face", "all:alice"]) == 0
    record = json.loads(png_metadata(out)["parameters"])
    assert [(f["face"], f["lora"]) for f in record["faces"]] == [(1, "bob"), (0, "alice")]
    capsys.readouterr()
    assert main([*common, "--face", "3"]) == 2
    assert "there is no face 3; 2 faces found" in capsys.readouterr().err
    assert main([*common, "--face", "0", "--face", "0:bob"]) == 2
    assert "face 0 is chosen more than once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--face", "left"])
