"""Issue 9 pieces that need no server: cache clean-up, auth flag, the guards' messages, background training jobs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from faceswap_core.engine import Engine, SwapResult
from faceswap_core.errors import BusyError, SettingsError
from faceswap_core.settings import RESULT_MAX_AGE_S, STEPS, ModelSpec
from faceswap_core.training.jobs import DONE, TrainingJobs
from faceswap_core.training.trainer import TrainProgress
from faceswap_core.ui import guards
from faceswap_core.ui.common import ResultFiles
from faceswap_core.ui.config import parse_config
from faceswap_core.ui.demo import create_demo


def test_gradio_cache_and_result_files_are_cleaned_up(tmp_path: Path) -> None:
    engine = Engine(ModelSpec("tiny", device="cpu"), lora_dir=str(tmp_path), allow_paths=False)
    demo = create_demo(engine, load_model=False)
    assert demo.delete_cache == (RESULT_MAX_AGE_S, RESULT_MAX_AGE_S)
    files = ResultFiles()
    old = files.save(SwapResult(Image.new("RGB", (8, 8)), {}), {"seed": 1})
    hour_ago = time.time() - RESULT_MAX_AGE_S - 10
    os.utime(old, (hour_ago, hour_ago))
    new = files.save(SwapResult(Image.new("RGB", (8, 8)), {}), {"seed": 2})
    assert new.is_file() and not old.exists()


def test_the_app_takes_loras_by_name_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow_paths=False"):
        create_demo(Engine(ModelSpec("tiny", device="cpu"), lora_dir=str(tmp_path)), load_model=False)
    engine = Engine(ModelSpec("tiny", device="cpu"), lora_dir=str(tmp_path), allow_paths=False)
    create_demo(engine, load_model=False)
    with pytest.raises(Exception, match="not found"):
        engine.loras.resolve("/etc/passwd")


def test_auth_from_flag_or_environment() -> None:
    assert parse_config([], {}).auth is None
    assert parse_config(["--auth", "ann:s3:cret"], {}).auth == ("ann", "s3:cret")
    assert parse_config([], {"FACESWAP_AUTH": "bob:pw"}).auth == ("bob", "pw")
    with pytest.raises(SystemExit):
        parse_config(["--auth", "nopassword"], {})


def test_guards_name_the_field_and_hide_server_paths() -> None:
    with pytest.raises(SettingsError, match="steps must be a finite number"):
        guards.number(float("nan"), "steps", STEPS)
    with pytest.raises(SettingsError, match="seed must be a number"):
        guards.number("x", "seed")
    with pytest.raises(SettingsError, match="whole number"):
        guards.number(2.5, "steps", STEPS, integer=True)
    assert guards.text(None, "prompt") == ""
    message = "/tmp/gradio/abc/photo.png: no face found; LoRA alice/checkpoint-10 at ~/x/y.safetensors"
    assert guards.public_message(message) == "photo.png: no face found; LoRA alice/checkpoint-10 at y.safetensors"
    assert guards.public_message("see https://huggingface.co/x") == "see https://huggingface.co/x"
    record = {"lora_path": "/srv/loras/a.safetensors", "base_model": "/models/sdxl", "settings": {"seed": 1}}
    assert guards.public_record(record) == {"base_model": "sdxl", "settings": {"seed": 1}}


def test_a_training_job_is_watched_without_waiting_and_stopped_by_its_event() -> None:
    parked = threading.Lock()

    def gpu() -> object:
        return parked

    started, stopped = threading.Event(), threading.Event()

    def train(progress: object, cancel: threading.Event) -> str:
        started.set()
        cancel.wait(30)
        stopped.set()
        return "cancelled"

    jobs = TrainingJobs(gpu)  # type: ignore[arg-type]
    job = jobs.start("page-1", "anna", train)  # type: ignore[arg-type]
    assert started.wait(5) and parked.locked()
    began = time.monotonic()
    assert job.next_report(timeout=0.1) is None and time.monotonic() - began < 1
    with pytest.raises(SettingsError, match="already going"):
        jobs.start("page-1", "anna", train)  # type: ignore[arg-type]
    job.cancel.set()
    assert job.wait(5) and stopped.is_set() and not parked.locked()
    assert job.next_report(timeout=1) is DONE and jobs.get("page-1") is None


def test_a_visitor_who_finds_the_training_slot_taken_is_told_until_when() -> None:
    release = threading.Event()

    def train(progress: Any, cancel: threading.Event) -> str:
        progress(TrainProgress(step=120, total=800, loss=0.1, elapsed=60.0, eta=3600.0))
        release.wait(30)
        return "done"

    jobs = TrainingJobs(slots=1)
    first = jobs.start("page-1", "anna", train)  # type: ignore[arg-type]
    assert first.next_report(timeout=5) is not None and jobs.training("anna") and not jobs.training("bob")
    until = time.strftime("%H:%M", time.localtime(time.time() + 3600))
    with pytest.raises(BusyError, match=rf"busy until ~{until}.*\(step 120 of 800\)"):
        jobs.check_free("page-2")
    with pytest.raises(BusyError, match="busy until"):
        jobs.start("page-2", "bob", train)  # type: ignore[arg-type]
    two = TrainingJobs(slots=2)
    runs = [two.start(f"page-{n}", f"p{n}", train) for n in (1, 2)]  # type: ignore[arg-type]
    with pytest.raises(BusyError, match="busy"):
        two.check_free("page-3")
    release.set()
    assert all(job.wait(5) for job in [first, *runs])
    jobs.check_free("page-2")  # free again once the run ended


def test_a_full_disk_while_adding_a_person_says_so_once_and_leaves_nothing(
    tmp_path: Path, astronaut: Image.Image, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import logging

    import gradio as gr

    import faceswap_core.prepare
    from faceswap_core.ui.swap import SwapHandlers

    photos = [tmp_path / "a.png", tmp_path / "b.png"]
    astronaut.save(photos[0])
    astronaut.crop((0, 0, 480, 512)).save(photos[1])
    engine = Engine(ModelSpec("tiny", device="cpu"), lora_dir=str(tmp_path / "people"), allow_paths=False)
    engine.loras.viewer = lambda: "visitor-a"
    saved = faceswap_core.prepare.save_png

    def second_write_fails(*args: Any, **kwargs: Any) -> Any:  # the first crop is written, then the disk is full
        if list((tmp_path / "people").glob(".anna-*/anna/dataset/*.png")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return saved(*args, **kwargs)

    monkeypatch.setattr(faceswap_core.prepare, "save_png", second_write_fails)
    with caplog.at_level(logging.WARNING), pytest.raises(gr.Error, match="no disk space left") as refused:
        SwapHandlers(engine).add_person({"new_name": "anna", "references": [str(p) for p in photos]})
    assert str(tmp_path) not in refused.value.message
    assert [entry.name for entry in (tmp_path / "people").iterdir()] == [".owners.json"]  # no person, no staging
    assert engine.loras.owners.all() == {}  # and the name is not kept from others
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [(f"add_person: {refused.value.message}", None)]
