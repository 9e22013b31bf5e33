"""The face commands end to end: outputs, exit codes and the one-line errors a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faceswap_core.cli as cli
from faceswap_core.images import png_metadata

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def only_face_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just this module's commands, so these tests do not depend on the diffusion commands."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("faces",))


@pytest.fixture(scope="module")
def photos(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = {"face": folder / "astronaut.png", "coffee": folder / "coffee.jpg", "text": folder / "notes.jpg"}
    astronaut.save(paths["face"])
    Image.fromarray(data.coffee()).save(paths["coffee"])
    paths["text"].write_text("not an image")
    return paths


def _run_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``python -m faceswap_core`` experience (stderr, exit status), with only the face commands."""
    code = "import sys, faceswap_core.cli as c; c.COMMAND_MODULES = ('faces',); sys.exit(c.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("command", ["faces", "mask", "prepare", "score"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert command in capsys.readouterr().out


def _faces_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert cli.main(["faces", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_faces_command_describes_the_face(
    photos: dict[str, Path], astronaut: Image.Image, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceswap_core.faces import find_face

    result = _faces_json([str(photos["face"])], capsys)
    assert (result["image"], result["width"], result["height"]) == (str(photos["face"]), 512, 512)
    [face] = result["faces"]
    expected = find_face(astronaut)
    assert face["index"] == 0 and face["score"] == pytest.approx(expected.score, abs=1e-3)
    assert face["box"] == pytest.approx(list(expected.box), abs=0.01)
    assert np.allclose(face["landmarks"], expected.landmarks, atol=0.01) and len(face["landmarks"]) == 68
    assert face["size"] == pytest.approx(max(expected.jaw_width, expected.width), abs=0.01)
    assert _faces_json([str(photos["coffee"])], capsys)["faces"] == []  # no face is an answer, not an error


def test_faces_command_on_two_people(capsys: pytest.CaptureFixture[str]) -> None:
    """Indexes are the ones ``--face`` takes: largest first, each with its own landmarks."""
    from faceswap_core.faces import find_face

    photo = REPO.parent / "shared" / "data" / "people" / "two_people.jpg"
    if not photo.is_file():
        pytest.skip("shared people photos not present")
    faces = _faces_json([str(photo)], capsys)["faces"]
    assert [face["index"] for face in faces] == [0, 1]
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
    assert areas[0] >= areas[1] * 0.999  # largest first (to the rounding of the printed boxes)
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        centre = np.mean(face["landmarks"], axis=0)
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1
        assert face["box"] == pytest.approx(list(find_face(photo, face["index"]).box), abs=0.01)
    (a0, _, a1, _), (b0, _, b1, _) = faces[0]["box"], faces[1]["box"]
    assert a1 < b0 or b1 < a0  # two different people side by side


def test_faces_command_errors(photos: dict[str, Path], tmp_path: Path) -> None:
    for path in (photos["text"], tmp_path / "missing.jpg"):
        result = _run_process("faces", str(path))
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and path.name in result.stderr and "Traceback" not in result.stderr
    result = _run_process("faces", str(photos["face"]), "--backend", "nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    ok = _run_process("faces", str(photos["face"]))
    assert ok.returncode == 0 and len(json.loads(ok.stdout)["faces"]) == 1  # stdout is nothing but the JSON


def test_mask_command(photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mask.png"
    assert cli.main(["mask", str(photos["face"]), "-o", str(out), "--grow", "4", "--feather", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    mask = Image.open(out)
    assert mask.mode == "L" and mask.size == (512, 512)
    assert np.asarray(mask)[130, 220] == 255 and np.asarray(mask)[10, 10] == 0
    assert png_metadata(out)["grow"] == "4.0"


def test_mask_command_switches(
    photos: dict[str, Path], astronaut: Image.Image, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-occlusion keeps a hand over the cheek in the mask; --landmarks picks the backend."""
    from bench.occluders import composite
    from faceswap_core.faces import detect_faces

    scene, alpha = composite(astronaut, "hand", detect_faces(astronaut)[0])
    path = tmp_path / "hand.png"
    scene.save(path)
    masks = {}
    for name, extra in (("aware", []), ("plain", ["--no-occlusion"]), ("dlib", ["--landmarks", "dlib"])):
        assert cli.main(["mask", str(path), "-o", str(tmp_path / f"{name}.png"), *extra]) == 0
        masks[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    hand = (alpha >= 128) & (masks["plain"] >= 128)
    assert hand.sum() > 500 and (masks["aware"][hand] < 128).mean() > 0.9
    assert not np.array_equal(masks["dlib"], masks["aware"])  # other landmarks, another outline
    with pytest.raises(SystemExit):
        cli.main(["faces", str(photos["face"]), "--landmarks", "insightface"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "extra", "message"),
    [
        ("text", [], "notes.jpg: not an image"),
        ("coffee", [], "coffee.jpg: no face found"),
        ("face", ["--face", "1"], "face index 1"),
        ("face", ["--grow", "1000"], "grow must be between"),
    ],
)
def test_mask_errors_are_one_line(
    photos: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key: str,
    extra: list[str],
    message: str,
) -> None:
    assert cli.main(["mask", str(photos[key]), "-o", str(tmp_path / "m.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "m.png").exists()


def test_bad_input_in_a_real_process_prints_one_line(photos: dict[str, Path], tmp_path: Path) -> None:
    for key in ("text", "coffee"):
        result = _run_process("mask", str(photos[key]), "-o", str(tmp_path / "m.png"))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert photos[key].name in result.stderr
    usage = _run_process("mask", str(photos["face"]))  # missing -o
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def test_prepare_command(photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dataset"
    argv = ["prepare", str(photos["face"]), str(photos["coffee"]), "-o", str(out), "--size", "256"]
    assert cli.main([*argv, "--caption", "a photo of sks woman"]) == 0
    captured = capsys.readouterr()
    assert "astronaut.png ->" in captured.out and "1 of 2 photos" in captured.out
    assert captured.err.count("\n") == 1 and "coffee.jpg: no face found" in captured.err
    assert (out / "astronaut.png").is_file() and "a photo of sks woman" in (out / "metadata.csv").read_text()
    assert cli.main(["prepare", str(photos["coffee"]), "-o", str(tmp_path / "none"), "--size", "256"]) == 2
    assert "none of the 1 photos" in capsys.readouterr().err
    assert cli.main(["prepare", str(photos["face"]), "-o", str(tmp_path / "x"), "--size", "50"]) == 2


def test_score_command(photos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", str(photos["face"]), "--reference", str(photos["face"]), str(photos["coffee"])]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["image"] == str(photos["face"]) and result["references"] == 1
    assert result["distance"] == pytest.approx(0.0, abs=1e-3)
    assert result["skipped_references"] == [str(photos["coffee"])]
    assert cli.main(["score", str(photos["coffee"]), "--reference", str(photos["face"])]) == 2
    assert "no face found" in capsys.readouterr().err
