"""The Swap tab's work across a reload (issue 21, item 6), without a browser: what the browser keeps is small,
what it sends back is untrusted, and a ticket brings back only what the server kept for its owner."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.face_choice import NO_LORA
from faceswap_core.photo_store import PhotoStore
from faceswap_core.settings import ModelSpec
from faceswap_core.ui import session_keep
from faceswap_core.ui.common import continue_owner, current_owner, editor_mask
from faceswap_core.ui.session_keep import RESTORED, SessionKeeper, read_value
from faceswap_core.ui.swap_handlers import SwapHandlers

QUICK = {"steps": 2, "guidance": 5.0, "seed": 3, "lora_scale": 1.0, "negative": "", "padding": 0.6}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    lora_dir = tmp_path_factory.mktemp("kept-people")
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=lora_dir)


@pytest.fixture
def photo_file(astronaut: Image.Image, tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    return path


def restored(keeper: SessionKeeper, value: Any) -> dict[str, Any]:
    return dict(zip(RESTORED, keeper.restore(value), strict=True))


def remember(keeper: SessionKeeper, value: Any, fields: dict[str, Any]) -> dict[str, Any]:
    return keeper.remember(value, fields["photo"], 0, fields["person"], fields["strength"], fields["prompt"], None)


def generated(swap: SwapHandlers, photo_file: Path) -> dict[str, Any]:
    """Upload with alice at strength 0.7, touch up the mask, generate: the fields the page holds then."""
    photo, editor, *_ = swap.load_photo(str(photo_file), "alice", 0.7, "a photo in the snow")
    layer = editor["layers"][0].copy()
    layer.paste((0, 110, 255, 128), (0, 0, 40, 40))  # a brush stroke in the corner
    editor = {**editor, "layers": [layer]}
    fields = {"photo": photo, "editor": editor, "face": 0, "person": "alice", "strength": 0.7}
    fields.update(prompt="a photo in the snow", **QUICK)
    swap.generate(fields)
    return fields


def test_photo_choices_mask_and_result_come_back_after_a_reload(engine: Engine, photo_file: Path) -> None:
    swap = SwapHandlers(engine)
    keeper = SessionKeeper(swap)
    fields = generated(swap, photo_file)
    value = remember(keeper, None, fields)
    assert len(json.dumps(value)) < 300  # a ticket and the controls: no image in the browser's storage
    back = restored(keeper, value)
    photo = back["photo"]
    assert photo is not fields["photo"] and photo.key == fields["photo"].key  # its own copy of the same photo
    assert photo.choices[0].person == "alice" and photo.choices[0].strength == 0.7
    assert back["person"].value == "alice" and back["strength"] == 0.7 and back["prompt"] == "a photo in the snow"
    assert back["editor"]["background"] == str(fields["photo"].display)
    mask = np.asarray(editor_mask(back["editor"]))
    assert np.array_equal(mask, np.asarray(editor_mask(fields["editor"])))  # the touch-up too
    before, after = back["result"]
    assert (before, after) == fields["photo"].last[:2] and Path(after).is_file()
    download = Path(back["download"].value["path"])
    assert back["download"].visible and download.read_bytes() == Path(fields["photo"].last[2]).read_bytes()
    assert back["views"].selected == "result" and "last result" in back["mask_note"]


def test_a_photo_dropped_from_the_server_is_said_plainly(engine: Engine, photo_file: Path) -> None:
    swap = SwapHandlers(engine, photos=PhotoStore(ttl_s=0.05))
    keeper = SessionKeeper(swap)
    photo, *_ = swap.load_photo(str(photo_file), "alice", 0.4, "")
    value = remember(keeper, None, {"photo": photo, "person": "alice", "strength": 0.4, "prompt": ""})
    time.sleep(0.1)
    swap.photos.sweep()
    back = restored(keeper, value)
    assert "no longer on the server" in back["mask_note"] and "upload it again" in back["mask_note"]
    assert back["photo"] == gr.skip() and back["result"] == gr.skip()  # left as they are: empty
    assert back["strength"] == 0.4 and back["person"].value == "alice"  # the choices are back


def test_an_unknown_ticket_restores_nothing_it_was_not_given(engine: Engine, photo_file: Path) -> None:
    swap = SwapHandlers(engine)
    keeper = SessionKeeper(swap)
    photo, *_ = swap.load_photo(str(photo_file), "alice", 0.5, "")
    value = remember(keeper, None, {"photo": photo, "person": "alice", "strength": 0.5, "prompt": ""})
    guessed = {**value, "ticket": "A" * 22}
    back = restored(keeper, guessed)
    assert not isinstance(back["photo"], type(photo)) and "no longer on the server" in back["mask_note"]


@pytest.mark.parametrize(
    "value",
    [
        "ticket",
        [1, 2],
        {"v": 1, "ticket": "../../etc/passwd"},
        {"v": 1, "ticket": "x" * 5000},
        {"v": 1, "ticket": None, "strength": 1e23},
        {"v": 1, "ticket": None, "strength": "nan"},
        {"v": 1, "ticket": None, "face": -1},
        {"v": 1, "ticket": None, "person": {"a": 1}},
        {"v": 1, "ticket": None, "prompt": "x" * 100_000},
        {"v": 1, "ticket": None, "path": "/etc/passwd"},
        {"v": 2, "ticket": None},
    ],
)
def test_values_no_page_wrote_restore_nothing_and_break_nothing(engine: Engine, value: Any) -> None:
    keeper = SessionKeeper(SwapHandlers(engine))
    assert read_value(value) is None
    back = restored(keeper, value)
    assert back["person"].value == NO_LORA  # the picker is read afresh, nothing else is touched
    assert all(back[name] == gr.skip() for name in RESTORED if name != "person")


def test_a_person_no_longer_there_is_said_and_not_picked(engine: Engine) -> None:
    keeper = SessionKeeper(SwapHandlers(engine))
    value = {"v": 1, "ticket": None, "face": 0, "person": "nobody", "strength": 0.5, "prompt": "", "likeness": None}
    back = restored(keeper, value)
    assert back["person"].value == NO_LORA and "nobody is no longer available" in back["mask_note"]


def test_another_owner_gets_a_new_ticket_and_a_reload_continues_the_owner(
    engine: Engine, photo_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending someone else's ticket back does not overwrite their kept work; the reloading session
    continues the owner that made the ticket (its people come back with it)."""
    from gradio.context import LocalContext

    swap = SwapHandlers(engine)
    keeper = SessionKeeper(swap)
    photo, *_ = swap.load_photo(str(photo_file), "alice", 0.5, "")
    fields = {"photo": photo, "person": "alice", "strength": 0.5, "prompt": ""}
    first = LocalContext.request.set(SimpleNamespace(username=None, session_hash="first-page"))
    try:
        mine = remember(keeper, None, fields)
        owner = current_owner()
        assert remember(keeper, mine, fields)["ticket"] == mine["ticket"]  # the same owner keeps its ticket
    finally:
        LocalContext.request.reset(first)
    other = LocalContext.request.set(SimpleNamespace(username=None, session_hash="someone-else"))
    try:
        assert remember(keeper, mine, fields)["ticket"] != mine["ticket"]
    finally:
        LocalContext.request.reset(other)
    reloaded = LocalContext.request.set(SimpleNamespace(username=None, session_hash="after-reload"))
    try:
        assert current_owner() != owner
        restored(keeper, mine)
        assert current_owner() == owner
    finally:
        LocalContext.request.reset(reloaded)


def test_kept_work_is_bounded(engine: Engine, photo_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swap = SwapHandlers(engine)
    keeper = SessionKeeper(swap, max_kept=2)
    photo, *_ = swap.load_photo(str(photo_file), "alice", 0.5, "")
    fields = {"photo": photo, "person": "alice", "strength": 0.5, "prompt": ""}
    values = [remember(keeper, None, fields) for _ in range(3)]
    assert "no longer on the server" in restored(keeper, values[0])["mask_note"]
    assert restored(keeper, values[2])["photo"].key == photo.key
    monkeypatch.setattr(session_keep.time, "monotonic", lambda: time.time() + 10 * keeper.ttl_s)
    assert "no longer on the server" in restored(keeper, values[2])["mask_note"]


def test_owner_continuation_needs_a_request() -> None:
    continue_owner("abc")  # outside a request (start-up, a background job): nothing to continue
    assert current_owner() is None
