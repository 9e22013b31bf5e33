"""``batch`` on the tiny model without Ray: results and report, skipped files with reasons, resuming."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.engine import Engine
from faceswap_core.errors import ClusterError
from faceswap_core.jobs.batch import LocalExecutor, Outcome, run_batch
from faceswap_core.requests import SwapRequest
from faceswap_core.settings import SwapSettings


def make_photos(folder: Path, astronaut: Image.Image, count: int = 2) -> Path:
    """``count`` small face photos, a photo with no face and a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        astronaut.crop((100 + 10 * i, 0, 403, 301 - 10 * i)).resize((128, 128)).save(folder / f"face{i}.jpg")
    Image.new("RGB", (96, 96), (90, 120, 30)).save(folder / "plain.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def photos(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photos(tmp_path_factory.mktemp("batch") / "in", astronaut)


def batch_args(photos: Path, out: Path, model: Path, *more: str) -> list[str]:
    return ["batch", str(photos), "-o", str(out), "--base", str(model), "--device", "cpu", "--steps", "2", *more]


def test_batch_writes_results_and_a_report_and_resumes_with_the_same_seed(
    tiny_model_dir: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(batch_args(photos, out, tiny_model_dir)) == 0  # no --seed: one is drawn for the whole batch
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (printed["done"], printed["skipped"], printed["exists"], printed["pending"]) == (2, 2, 0, 0)
    report = json.loads((out / "batch.json").read_text())
    by_photo = {entry["photo"]: entry for entry in report["photos"]}
    assert [entry["photo"] for entry in report["photos"]] == ["face0.jpg", "face1.jpg", "notes.txt", "plain.png"]
    assert by_photo["notes.txt"]["status"] == "skipped" and "not an image" in by_photo["notes.txt"]["reason"]
    assert by_photo["plain.png"]["status"] == "skipped" and "no face" in by_photo["plain.png"]["reason"]
    assert sorted(path.name for path in out.glob("*.png")) == ["face0.png", "face1.png"]
    seed = report["request"]["settings"]["seed"]
    assert isinstance(seed, int)
    first = (out / "face1.png").read_bytes()
    (out / "face1.png").unlink()  # as if the job had stopped before it
    assert main(batch_args(photos, out, tiny_model_dir)) == 0
    report = json.loads((out / "batch.json").read_text())
    assert [entry["status"] for entry in report["photos"]] == ["exists", "done", "skipped", "skipped"]
    assert report["request"]["settings"]["seed"] == seed
    assert (out / "face1.png").read_bytes() == first  # the same seed, the same bytes
    assert main(batch_args(photos, out, tiny_model_dir, "--strength", "0.6")) == 2  # another request: refused
    assert "another request" in capsys.readouterr().err


def test_batch_refuses_writing_into_its_photos(tiny_model_dir: Path, photos: Path, capsys: pytest.CaptureFixture[str]):
    assert main(batch_args(photos, photos, tiny_model_dir)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "folder of their own" in error


class FailingAfter:
    """An executor that loses its cluster after ``count`` photos, as a Ray job does when the head goes away."""

    def __init__(self, engine: Engine, count: int) -> None:
        self.local = LocalExecutor(engine)
        self.count = count

    def map(self, request: SwapRequest, photos: Sequence[str]) -> Iterator[tuple[int, Outcome]]:
        for position, outcome in self.local.map(request, photos):
            if position == self.count:
                raise ClusterError("the Ray cluster failed during the batch (test); run it again to resume")
            yield position, outcome


def test_a_batch_stopped_by_its_cluster_keeps_its_results_and_resumes(
    tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    photos = make_photos(tmp_path / "in", astronaut, count=3)
    out = tmp_path / "out"
    engine = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras")
    request = SwapRequest(str(photos), settings=SwapSettings(steps=2))
    with pytest.raises(ClusterError):
        run_batch(photos, out, request, FailingAfter(engine, 1))
    report = json.loads((out / "batch.json").read_text())
    statuses = {entry["photo"]: entry["status"] for entry in report["photos"]}
    assert statuses == {"face0.jpg": "done", "face1.jpg": "pending", "face2.jpg": "pending"} | {
        "notes.txt": "skipped",  # settled before any work: not an image
        "plain.png": "pending",  # its missing face is found by the worker that never came to it
    }
    written = (out / "face0.png").read_bytes()
    report = run_batch(photos, out, request, LocalExecutor(engine))
    assert [entry["status"] for entry in report["photos"][:3]] == ["exists", "done", "done"]
    assert (out / "face0.png").read_bytes() == written
    fresh = run_batch(photos, tmp_path / "fresh", report_request(out), LocalExecutor(engine))
    assert fresh["counts"]["done"] == 3
    for name in ("face0.png", "face1.png", "face2.png"):  # resumed pieces equal one uninterrupted run
        assert (tmp_path / "fresh" / name).read_bytes() == (out / name).read_bytes()


def report_request(out: Path) -> SwapRequest:
    return SwapRequest.from_dict(json.loads((out / "batch.json").read_text())["request"])


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_ray_address_fails_fast_with_one_line(
    tiny_model_dir: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    pytest.importorskip("ray")
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    assert main(batch_args(photos, tmp_path / "out", tiny_model_dir, "--ray", address)) == 2
    assert time.monotonic() - started < 30  # Ray alone retries such an address for minutes
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"cannot reach the Ray cluster at {address}" in error
