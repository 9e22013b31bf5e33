"""Batches, clips and the app's swaps on a local Ray cluster (2 CPUs, no GPU, the tiny model).

One cluster for the whole module (starting Ray takes seconds); Ray Data's engine actors, the clip's
frame actors and Serve's replicas each take one CPU. What is checked: Ray's results are the local
loop's bytes, a worker killed mid-batch or mid-clip costs nothing, and two clients of the Serve
deployment each get their own result.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image
from test_batch import make_photos
from video_factory import around_face, camera_move, write_clip

from faceswap_core.cli import main
from faceswap_core.cluster import LOCAL, connect
from faceswap_core.engine import Engine
from faceswap_core.errors import CancelledError
from faceswap_core.jobs.batch import LocalExecutor, run_batch
from faceswap_core.media import probe, read_frames
from faceswap_core.requests import SwapRequest
from faceswap_core.settings import ModelSpec, SwapSettings
from faceswap_core.video import VideoSettings, swap_clip

ray = pytest.importorskip("ray")
STEPS = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    connect(LOCAL, num_cpus=2, object_store_memory=200 * 1024**2, log_to_driver=False)
    yield
    if "ray.serve" in __import__("sys").modules:
        from ray import serve

        serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photos(tmp_path_factory.mktemp("ray-batch") / "in", astronaut, count=3)


@pytest.fixture(scope="module")
def local_results(tiny_model_dir: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch run by the local loop: what every Ray run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("ray-batch") / "local"
    engine = Engine(str(tiny_model_dir), lora_dir=out.parent / "loras")
    run_batch(photos, out, SwapRequest(str(photos), settings=SwapSettings(steps=STEPS, seed=5)), LocalExecutor(engine))
    return out


def same_results(one: Path, other: Path) -> None:
    names = sorted(path.name for path in one.glob("*.png"))
    assert names == ["face0.png", "face1.png", "face2.png"]
    assert names == sorted(path.name for path in other.glob("*.png"))
    for name in names:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def test_batch_on_ray_writes_the_local_bytes(
    cluster: None, tiny_model_dir: Path, photos: Path, local_results: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    args = ["batch", str(photos), "-o", str(out), "--base", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--steps", str(STEPS), "--seed", "5", "--ray", "local", "--workers", "2"]) == 0
    same_results(local_results, out)
    statuses = [entry["status"] for entry in json.loads((out / "batch.json").read_text())["photos"]]
    local = [entry["status"] for entry in json.loads((local_results / "batch.json").read_text())["photos"]]
    assert statuses == local == ["done", "done", "done", "skipped", "skipped"]


def engine_worker_pids(name: str = "EngineWorker") -> list[int]:
    """The processes of the engine actors of class ``name`` (their title names the class)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if name in " ".join(process.info["cmdline"] or ()):
            found.append(process.info["pid"])
    return found


def _gone(pid: int, wait_s: float = 10.0) -> bool:
    """The killed process is gone, or a zombie its parent has not reaped yet."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


def test_a_worker_killed_mid_batch_costs_no_result(
    cluster: None, tiny_model_dir: Path, photos: Path, local_results: Path, tmp_path: Path
) -> None:
    from faceswap_core.cluster.data import RayExecutor

    out = tmp_path / "ray"
    seen: Counter[str] = Counter()
    killed: list[int] = []

    def kill_a_worker(entry: dict) -> None:
        seen[entry["photo"]] += 1
        if not killed:  # after the first result: the others are still queued or running
            pids = engine_worker_pids()
            assert pids, "no engine actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    executor = RayExecutor(ModelSpec(base=str(tiny_model_dir), device="cpu"), str(tmp_path / "loras"), workers=2)
    request = SwapRequest(str(photos), settings=SwapSettings(steps=STEPS, seed=5))
    report = run_batch(photos, out, request, executor, on_item=kill_a_worker)
    assert killed and _gone(killed[0])
    assert report["counts"] == {"done": 3, "skipped": 2, "exists": 0, "pending": 0}
    assert set(seen.values()) == {1} and len(seen) == 4  # each photo reported (and written) exactly once
    same_results(local_results, out)


# --- clips ---------------------------------------------------------------------------------------
CLIP_SETTINGS = VideoSettings(swap=SwapSettings(steps=STEPS, strength=0.5, seed=3))  # with the flow blend


@pytest.fixture(scope="module")
def clip(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames of a pan over the astronaut's face, with audio."""
    frames = camera_move(around_face(astronaut, 1.3), 6, size=128)
    return write_clip(tmp_path_factory.mktemp("ray-clip") / "pan.mp4", frames)


@pytest.fixture(scope="module")
def local_clip(tiny_model_dir: Path, clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip swapped by the local loop (lossless): what every Ray run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("ray-clip") / "local.mkv"
    engine = Engine(str(tiny_model_dir), lora_dir=out.parent / "loras")
    swap_clip(engine, clip, out, CLIP_SETTINGS, job_folder=out.parent / "local.job")
    return out


def same_frames(one: Path, other: Path, other_job: Path) -> None:
    """The same decoded frames, and the same repainted patches in the job folders, byte for byte (the
    files themselves differ only in the random segment id FFmpeg's Matroska muxer writes)."""
    pairs = list(zip(read_frames(probe(one)), read_frames(probe(other)), strict=True))
    assert len(pairs) == 6
    for a, b in pairs:
        assert a.pixels.tobytes() == b.pixels.tobytes(), a.index
    patches = sorted((one.parent / "local.job" / "patches").glob("*.png"))
    assert [p.name for p in patches] == sorted(p.name for p in (other_job / "patches").glob("*.png"))
    assert len(patches) == 6
    for patch in patches:
        assert patch.read_bytes() == (other_job / "patches" / patch.name).read_bytes(), patch.name


def test_video_on_ray_writes_the_local_bytes(
    cluster: None, tiny_model_dir: Path, clip: Path, local_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray.mkv"
    args = ["video", str(clip), "-o", str(out), "--base", str(tiny_model_dir), "--device", "cpu"]
    settings = ["--steps", str(STEPS), "--strength", "0.5", "--seed", "3", "--lora-dir", str(tmp_path / "loras")]
    assert main([*args, *settings, "--ray", "local", "--workers", "2"]) == 0
    same_frames(local_clip, out, tmp_path / "ray.mkv.job")


def test_a_worker_killed_mid_clip_costs_no_frame(
    cluster: None, tiny_model_dir: Path, clip: Path, local_clip: Path, tmp_path: Path
) -> None:
    from faceswap_core.cluster.data import RayFrames

    killed: list[int] = []
    finished: list[int] = []

    def kill_a_worker(stage: str, done: int, total: int, left: float | None) -> None:
        if stage != "swapping":
            return
        finished.append(done)
        if not killed:  # after the first frame: the window holds frames queued or running on both actors
            pids = engine_worker_pids("FrameWorker")
            assert pids, "no frame actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    frames = RayFrames(ModelSpec(base=str(tiny_model_dir), device="cpu"), str(tmp_path / "loras"), workers=2)
    engine = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras")  # tracks here; loads no model
    out = tmp_path / "ray.mkv"
    swap_clip(engine, clip, out, CLIP_SETTINGS, job_folder=tmp_path / "job", progress=kill_a_worker, frames=frames)
    assert killed and _gone(killed[0])
    assert finished == [1, 2, 3, 4, 5, 6]  # each frame finished once, in order
    assert sorted(int(p.name[:6]) for p in (tmp_path / "job" / "patches").glob("*.png")) == list(range(6))
    assert not engine.loaded
    same_frames(local_clip, out, tmp_path / "job")


def test_more_workers_than_the_cluster_holds_are_refused_at_once(
    cluster: None, tiny_model_dir: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["video", str(clip), "-o", str(tmp_path / "o.mkv"), "--base", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--lora-dir", str(tmp_path / "loras"), "--ray", "local", "--workers", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has 2 CPU(s)" in err and "at most 2 with --workers" in err


def test_a_cluster_without_room_now_fails_within_the_start_bound(
    cluster: None, tiny_model_dir: Path, clip: Path, tmp_path: Path
) -> None:
    from ray.util.placement_group import placement_group, remove_placement_group

    from faceswap_core.cluster.data import RayFrames
    from faceswap_core.errors import ClusterError

    hold = placement_group([{"CPU": 2}])  # another job holds both CPUs
    ray.get(hold.ready())
    try:
        frames = RayFrames(ModelSpec(base=str(tiny_model_dir), device="cpu"), str(tmp_path), start_timeout_s=2)
        engine = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras")
        with pytest.raises(ClusterError, match=r"1 of 1 engine workers did not start within 2 s.*0 CPU\(s\) free"):
            swap_clip(engine, clip, tmp_path / "o.mkv", CLIP_SETTINGS, job_folder=tmp_path / "job", frames=frames)
    finally:
        remove_placement_group(hold)


def test_cancel_on_ray_does_not_wait_for_the_frame_in_flight(
    cluster: None, tiny_model_dir: Path, clip: Path, tmp_path: Path
) -> None:
    """One actor, frames queued on it: a cancel after frame 2 returns without waiting for frame 3's repaint
    (a frame's time is measured between frames 1 and 2, in the same run)."""
    from faceswap_core.cluster.data import RayFrames

    slow = VideoSettings(swap=SwapSettings(steps=40, strength=1.0, seed=3), temporal_blend=0.0)
    frames = RayFrames(ModelSpec(base=str(tiny_model_dir), device="cpu"), str(tmp_path / "loras"), workers=1)
    cancel = threading.Event()
    finished: dict[int, float] = {}

    def cancel_after_the_second(stage: str, done: int, total: int, left: float | None) -> None:
        if stage == "swapping":
            finished[done] = time.monotonic()
            if done == 2:
                cancel.set()

    engine = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras")
    with pytest.raises(CancelledError, match="cancelled after 2 of 6"):
        swap_clip(
            engine,
            clip,
            tmp_path / "o.mkv",
            slow,
            job_folder=tmp_path / "job",
            cancel=cancel,
            frames=frames,
            progress=cancel_after_the_second,
        )
    latency, frame_s = time.monotonic() - finished[2], finished[2] - finished[1]
    print(f"a frame on the actor: {frame_s:.2f} s; the cancel returned in {latency:.2f} s")
    assert latency < 0.5 * frame_s


# --- the app on Serve (its replicas keep the cluster's CPUs from here on) ------------------------
@pytest.fixture(scope="module")
def remote_engine(cluster: None, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from faceswap_core.cluster.serve import RemoteEngine, deploy

    model = ModelSpec(base=str(tiny_model_dir), device="cpu")
    lora_dir = tmp_path_factory.mktemp("serve-loras")
    handle = deploy(model, str(lora_dir), min_replicas=1, max_replicas=2)
    return RemoteEngine(model, handle, lora_dir=lora_dir)


def test_two_clients_of_the_serve_deployment_each_get_their_own_result(
    remote_engine: Engine, tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    photos = [
        astronaut.crop((100, 0, 403, 301)).resize((128, 128)),
        astronaut.crop((110, 0, 403, 291)).resize((144, 144)),
    ]
    requests = [
        SwapRequest(photo, settings=SwapSettings(steps=4, seed=seed))
        for photo, seed in zip(photos, (1, 2), strict=True)
    ]
    results: dict[int, object] = {}
    progress: list[tuple[int, int]] = []

    def client(i: int) -> None:
        results[i] = remote_engine.run(requests[i], progress=(lambda s, t: progress.append((s, t))) if i else None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    local = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras")
    for i, request in enumerate(requests):
        expected = local.run(request)
        assert results[i].image.tobytes() == expected.image.tobytes(), i  # type: ignore[attr-defined]
        assert results[i].record["faces"] == expected.record["faces"]  # type: ignore[attr-defined]
    assert results[0].image.size != results[1].image.size  # type: ignore[attr-defined]
    assert progress[-1] == (2, 2)  # 4 steps x strength 0.5, streamed from the replica


def test_cancelling_a_remote_swap_stops_it_and_the_replica_serves_on(
    remote_engine: Engine, astronaut: Image.Image
) -> None:
    cancel = threading.Event()
    request = SwapRequest(astronaut.crop((100, 0, 403, 301)).resize((128, 128)), settings=SwapSettings(steps=8, seed=3))
    with pytest.raises(CancelledError):
        remote_engine.run(request, progress=lambda step, total: cancel.set(), cancel=cancel)
    assert remote_engine.run(request).image.size == (128, 128)


def test_a_swap_whose_replica_dies_is_sent_again_and_gets_the_local_result(
    remote_engine: Engine, tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    request = SwapRequest(astronaut.crop((100, 0, 403, 301)).resize((128, 128)), settings=SwapSettings(steps=8, seed=4))
    killed: list[int] = []
    steps: list[int] = []

    def kill_the_replicas(step: int, total: int) -> None:
        steps.append(step)
        if not killed:  # the swap is running on a replica: every replica dies, so its own does
            pids = engine_worker_pids("ServeReplica:faceswap:engine")
            assert pids, "no replica process found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    result = remote_engine.run(request, progress=kill_the_replicas)
    assert killed and all(_gone(pid) for pid in killed)
    assert steps.count(1) == 2  # progress started again on the replica that took the retry
    expected = Engine(str(tiny_model_dir), lora_dir=tmp_path / "loras").run(request)
    assert result.image.tobytes() == expected.image.tobytes()
    assert result.record["faces"] == expected.record["faces"]
