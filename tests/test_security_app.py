"""Issue 9, "Safe to put on the internet": each attack performed as an outsider would, against a real ``app.py``.

Every event handler of a Gradio app is an HTTP endpoint, so the attacks go through ``gradio_client``
or, where a client would refuse to send the value (NaN) or where the point is a dropped connection,
through Gradio's raw queue protocol (:class:`RawSession`).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import threading
import time
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_server import page_args, serving_app
from lora_factory import make_test_lora
from PIL import Image

pytestmark = pytest.mark.slow
SIZE = (96, 80)
BOX = (30, 20, 70, 60)
LONG_STEPS = 150  # about 20 s on the tiny model on a CPU: long enough to see whether a job really stops


# --- the server and its inputs --------------------------------------------------------------------
class App:
    def __init__(self, url: str, process: Any, lora_dir: Path, log: Path) -> None:
        self.url, self.process, self.lora_dir, self.log = url, process, lora_dir, log

    def client(self) -> Any:
        from gradio_client import Client

        return Client(self.url, verbose=False)


def training(steps: int, every: int) -> str:
    """``/train``'s settings as JSON: a tiny run on 64 px photos."""
    values = {"class_word": "woman", "steps": steps, "rank": 4, "learning_rate": 1e-4, "checkpoint_every": every}
    return json.dumps({**values, "resolution": 64})


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("security")
    lora_dir = root / "loras"
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    carol = make_test_lora(tiny_model_dir, root / "carol-src", seed=3)
    shutil.copy(carol, lora_dir / "carol.safetensors")
    make_test_lora(tiny_model_dir, root / "outside" / "dave", seed=4)  # a valid LoRA outside --lora-dir
    log = root / "app.log"
    with serving_app(tiny_model_dir, lora_dir, log) as (url, process):
        yield App(url, process, lora_dir, log)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("security-inputs")
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "target.png")
    mask = Image.new("L", SIZE, 0)
    mask.paste(255, BOX)
    mask.save(folder / "mask.png")
    return folder / "target.png", folder / "mask.png"


@pytest.fixture(scope="module")
def face_photos(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("security-faces")
    paths = [folder / "a.png", folder / "b.png"]
    astronaut.save(paths[0])
    astronaut.crop((0, 0, 480, 512)).save(paths[1])
    return paths


def swap_args(target: Path, mask: Path, **changes: Any) -> list[Any]:
    """``/swap_request``'s arguments: the request as JSON, then the photo, the mask, no photos, no reference."""
    from gradio_client import handle_file

    args = {"lora": "", "scale": 1.0, "prompt": "a photo", "strength": 0.5, "padding": 0.6, "steps": 4}
    args.update({"guidance": 5.0, "seed": 7, "face": 0, **changes})
    settings = {name: args[name] for name in ("prompt", "strength", "padding", "steps", "guidance", "seed")}
    request = {"person": args["lora"], "faces": [{"face": args["face"]}], "settings": settings}
    request["settings"]["lora_scale"] = args["scale"]
    return [json.dumps(request), handle_file(str(target)), handle_file(str(mask)), [], None]


def png_bomb(path: Path, side: int) -> Path:
    """A real PNG of side x side black pixels: 219 KB at 15000 px that decodes to 225 MB (900 MB as RGBA)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    rows = bytes(side + 1) * 256
    parts = [packer.compress(rows[: (side + 1) * min(256, side - start)]) for start in range(0, side, 256)]
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts) + packer.flush())
        + chunk(b"IEND", b"")
    )
    return path


class RawSession:
    """Gradio's queue protocol by hand: join an event, read its stream, drop the connection at will."""

    def __init__(self, url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60)
        self.session = uuid.uuid4().hex[:11]
        config = self.http.get("/config").json()
        self.config = config
        self.fn = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def upload(self, *paths: Path) -> list[dict[str, Any]]:
        files = [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]
        names = self.http.post("/gradio_api/upload", files=files).json()
        return [
            {"path": n, "orig_name": p.name, "meta": {"_type": "gradio.FileData"}}
            for n, p in zip(names, paths, strict=True)
        ]

    def join(self, api_name: str, data: list[Any]) -> str:
        body = {"data": data, "event_data": None, "fn_index": self.fn[api_name], "session_hash": self.session}
        response = self.http.post(  # json.dumps writes NaN, which gradio_client refuses to send
            "/gradio_api/queue/join", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        response.raise_for_status()
        return response.json()["event_id"]

    def messages(self) -> Iterator[dict[str, Any]]:
        with self.http.stream("GET", f"/gradio_api/queue/data?session_hash={self.session}") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[5:])

    def call(self, api_name: str, data: list[Any]) -> dict[str, Any]:
        self.join(api_name, data)
        for message in self.messages():
            if message.get("msg") == "process_completed":
                return message
        raise AssertionError("the stream ended without a result")


def answers_within(url: str, seconds: float) -> bool:
    try:
        with urllib.request.urlopen(url + "config", timeout=seconds) as response:
            return response.status == 200
    except OSError:
        return False


# --- 1. the Train tab writes only inside --lora-dir -----------------------------------------------
EDITOR = "The blue paint marks what gets replaced"  # the Swap tab editor's label


def test_train_names_stay_inside_the_lora_folder_and_never_hide_a_lora(app: App, face_photos: list[Path]) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = app.client()
    _, captions, _ = client.predict([handle_file(str(p)) for p in face_photos], "woman", api_name="/prepare")
    planted = app.lora_dir / "alice" / "checkpoint-99999"
    outside = app.lora_dir.parent / "written-outside"
    for name in (str(outside), "/" + str(outside), str(planted), "carol", "alice", "../up"):
        args = [captions, name, training(1, 1)]
        with pytest.raises(AppError, match="plain name|slash|already exists|starts with a dot"):
            client.predict(*args, api_name="/train")
    assert not outside.exists() and not planted.exists()
    assert not (app.lora_dir / "carol").exists() and not (app.lora_dir.parent / "up").exists()


def test_adding_a_person_checks_the_name_the_count_and_each_photo_first(
    app: App, face_photos: list[Path], tmp_path: Path
) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = app.client()
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/add_person"]

    def add(name: str, photos: list[Path]) -> Any:
        values = []
        for parameter in parameters["parameters"]:
            if parameter["label"] == "Keep them as a person named":
                values.append(name)
            elif parameter["label"].startswith("Photos of their face"):
                values.append([handle_file(str(photo)) for photo in photos])
            else:
                values.append(parameter.get("parameter_default"))
        return client.predict(*values, api_name="/add_person")

    text = tmp_path / "notes.png"
    text.write_text("a text file renamed .png")
    outside = app.lora_dir.parent / "added-outside"
    for name, photos, message in (
        (str(outside), face_photos, "use up to 64 letters"),
        ("../up", face_photos, "use up to 64 letters"),
        ("alice", face_photos, "already exists"),
        ("crowd", face_photos[:1] * 51, "at most 50"),
        ("fake", [face_photos[0], text], "notes.png: not an image file"),
    ):
        with pytest.raises(AppError, match=message) as info:
            add(name, photos)
        assert "/tmp" not in str(info.value) and str(app.lora_dir) not in str(info.value)
    assert not outside.exists() and not (app.lora_dir.parent / "up").exists()
    assert not (app.lora_dir / "crowd").exists() and not (app.lora_dir / "fake").exists()
    add("astro", face_photos)
    assert len(list((app.lora_dir / "astro" / "dataset").glob("*.png"))) == 2


# --- 2. decompression bombs -----------------------------------------------------------------------
def test_a_decompression_bomb_is_refused_from_its_header_without_memory(app: App, tmp_path: Path) -> None:
    import psutil
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bomb = png_bomb(tmp_path / "bomb.png", 15000)
    assert bomb.stat().st_size < 300_000
    server = psutil.Process(app.process.pid)
    client = app.client()
    idle = server.memory_info().rss
    peak = [idle]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        raw = RawSession(app.url)
        editor = {"background": raw.upload(bomb)[0], "layers": [], "composite": None, "id": None}
        refused = raw.call("auto_mask", page_args(raw.config, "auto_mask", {EDITOR: editor}))
        assert not refused["success"] and re.search("225 MP|15000x15000", refused["output"]["error"])
        with pytest.raises(AppError, match="225 MP|15000x15000"):
            request = json.dumps({"settings": {"steps": 4, "seed": 1}})
            client.predict(request, handle_file(str(bomb)), None, [], None, api_name="/swap_request")
    finally:
        done.set()
        watcher.join()
    assert time.monotonic() - started < 20
    assert peak[0] - idle < 300e6, f"server RSS rose by {(peak[0] - idle) / 1e6:.0f} MB refusing a bomb"


# --- 3. a LoRA overwritten in place while it is in use --------------------------------------------
def test_overwriting_a_lora_during_a_swap_does_not_kill_the_server(app: App, inputs: tuple[Path, Path]) -> None:
    client = app.client()
    target, mask = inputs
    client.predict(*swap_args(target, mask, lora="alice"), api_name="/swap_request")  # alice is loaded now
    weights = app.lora_dir / "alice" / "pytorch_lora_weights.safetensors"
    original = weights.read_bytes()
    job = client.submit(*swap_args(target, mask, lora="alice", steps=40, strength=1.0), api_name="/swap_request")
    time.sleep(3)
    with open(weights, "r+b") as handle:  # what cp and scp do: truncate, then write, in place
        handle.truncate(0)
        time.sleep(2)
        handle.write(original)
    path, record = job.result(timeout=300)
    assert app.process.poll() is None, "the server died"
    assert record["faces"][0]["lora"] == "alice" and Path(path).is_file()


# --- 4. a LoRA is a name from the registry, nothing else ------------------------------------------
def test_paths_and_uploads_are_not_loras_and_no_message_names_a_server_path(
    app: App, inputs: tuple[Path, Path]
) -> None:
    from gradio_client.exceptions import AppError

    client = app.client()
    target, mask = inputs
    dave = app.lora_dir.parent / "outside" / "dave"
    uploaded = RawSession(app.url).upload(dave / "pytorch_lora_weights.safetensors")[0]["path"]
    for lora in ("../outside/dave", str(dave), str(dave / "pytorch_lora_weights.safetensors"), uploaded):
        with pytest.raises(AppError, match="not found") as info:
            client.predict(*swap_args(target, mask, lora=lora), api_name="/swap_request")
        assert str(app.lora_dir.parent) not in str(info.value) and "/tmp" not in str(info.value)
    shadow, _ = client.predict("/etc/shadow", api_name="/describe_lora")
    missing, _ = client.predict("/etc/no-such-file", api_name="/describe_lora")
    assert shadow.replace("shadow", "X") == missing.replace("no-such-file", "X") and "/etc" not in shadow
    _, record = client.predict(*swap_args(target, mask, lora="alice"), api_name="/swap_request")
    assert str(app.lora_dir) not in json.dumps(record) and "lora_path" not in record


# --- 5. cancel cancels ----------------------------------------------------------------------------
def test_cancelled_and_abandoned_swaps_stop_and_free_the_queue(app: App, inputs: tuple[Path, Path]) -> None:
    from gradio_client import Client

    target, mask = inputs
    client = Client(app.url, verbose=False)
    client.predict(*swap_args(target, mask), api_name="/swap_request")  # warm

    raw = RawSession(app.url)  # a tab that is closed while its swap runs
    files = raw.upload(target, mask)
    request = json.dumps({"faces": [{"face": 0}], "settings": {"strength": 1.0, "steps": LONG_STEPS, "seed": 1}})
    raw.join("swap_request", [request, *files, None, None])
    for message in raw.messages():
        if message.get("msg") in ("process_starts", "progress"):
            break
    time.sleep(1)
    raw.http.close()
    started = time.monotonic()
    client.predict(*swap_args(target, mask), api_name="/swap_request")
    assert time.monotonic() - started < 12, "an abandoned swap kept the engine"

    jobs = [
        client.submit(*swap_args(target, mask, steps=LONG_STEPS, strength=1.0), api_name="/swap_request")
        for _ in range(3)
    ]
    time.sleep(3)
    for job in jobs:
        job.cancel()
    started = time.monotonic()
    client.predict(*swap_args(target, mask), api_name="/swap_request")
    assert time.monotonic() - started < 12, "cancelled swaps kept the engine"


# --- 6. closing the page during training ----------------------------------------------------------
def test_closing_the_page_while_training_encodes_leaves_the_server_answering(
    app: App, face_photos: list[Path], inputs: tuple[Path, Path]
) -> None:
    raw = RawSession(app.url)
    prepared = raw.call("prepare", [raw.upload(*face_photos), "woman", False])["output"]["data"]
    captions = prepared[1]
    raw.join("train", [None, captions, "left-behind", "woman", 4, 4, 1e-4, 2, 256, ""])
    for message in raw.messages():
        progress = message.get("progress_data") or []
        if message.get("msg") == "progress" and any("Encoding" in str(p.get("desc")) for p in progress):
            break
    raw.http.close()  # the tab is closed while the photos are being encoded
    closed = time.monotonic()
    while time.monotonic() - closed < 20:  # the rest of the encoding, and then some
        assert answers_within(app.url, 3), f"the server stopped answering {time.monotonic() - closed:.0f} s after"
        time.sleep(0.5)
    target, mask = inputs
    started = time.monotonic()
    app.client().predict(*swap_args(target, mask), api_name="/swap_request")
    assert time.monotonic() - started < 30
    assert not (app.lora_dir / "left-behind").exists()  # stopped before a checkpoint: nothing left


# --- 7. bounded work and clear messages -----------------------------------------------------------
def test_sixty_strengths_and_nan_numbers_are_refused_at_once(
    app: App, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap_core.ui.common import mask_layer

    target, mask = inputs
    raw = RawSession(app.url)
    editor = {"background": raw.upload(target)[0], "layers": [], "composite": None, "id": None}
    started = time.monotonic()
    many = {EDITOR: editor, "Strengths to try": "1.0 " * 60}
    assert "at most 8" in raw.call("try_strengths", page_args(raw.config, "try_strengths", many))["output"]["error"]
    assert time.monotonic() - started < 15
    mask_layer(Image.open(mask)).save(tmp_path / "layer.png")
    editor["layers"] = raw.upload(tmp_path / "layer.png")  # painted: Generate reads its settings
    for label, name in (("Steps", "steps"), ("Seed", "seed"), ("Trained person's weight", "trained person's weight")):
        nan = page_args(raw.config, "generate", {EDITOR: editor, label: float("nan")})
        output = raw.call("generate", nan)["output"]
        assert f"{name} must be a finite number" in output["error"]  # a private event still checks its inputs
    files = raw.upload(target, mask)
    plain = {"person": "", "faces": [{"face": 0}], "settings": {"strength": 0.5, "steps": 4, "seed": 1}}
    for where, name in (("settings", "steps"), ("settings", "seed"), ("settings", "lora_scale"), ("face", "likeness")):
        request = json.loads(json.dumps(plain))
        (request["faces"][0] if where == "face" else request["settings"])[name] = float("nan")
        output = raw.call("swap_request", [json.dumps(request), *files, None, None])["output"]
        assert "NaN is not a number a request may hold" in output["error"]
    assert raw.call("swap_request", [json.dumps(plain), *files, None, None])["success"]  # no prompt: the default one


# --- 8. one line per user error in the server log --------------------------------------------------
def test_user_errors_leave_one_log_line_and_no_traceback(app: App, inputs: tuple[Path, Path]) -> None:
    from gradio_client.exceptions import AppError

    target, mask = inputs
    with pytest.raises(AppError):
        app.client().predict(*swap_args(target, mask, lora="nobody-at-all"), api_name="/swap_request")
    time.sleep(0.5)
    log = app.log.read_text()
    assert "nobody-at-all" in log and "Traceback" not in log
