"""The app's API through gradio_client, against a real ``app.py`` server on the tiny model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from app_server import running_app
from lora_factory import make_test_lora
from PIL import Image

SIZE = (96, 80)
BOX = (30, 20, 70, 60)


@pytest.fixture(scope="module")
def face_photo(astronaut: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-face") / "astronaut.png"
    astronaut.save(path)
    return path


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, face_photo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from faceswap_core.identity_adapter import save_tiny_ip_adapter
    from faceswap_core.loras import LoraRegistry
    from faceswap_core.people import People

    lora_dir = tmp_path_factory.mktemp("api-loras")
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    make_test_lora(tiny_model_dir, lora_dir / "bob", seed=2)
    People(LoraRegistry(lora_dir)).add("carl", [face_photo])  # a person from a photo, no LoRA
    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("api-ip-adapter"))
    log = tmp_path_factory.mktemp("api-log") / "app.log"
    with running_app(tiny_model_dir, lora_dir, log, ip_adapter=adapter) as url:
        yield url


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A faceless target (an explicit mask needs no face) and a white-on-black mask file."""
    folder = tmp_path_factory.mktemp("api-inputs")
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    target = folder / "target.png"
    Image.fromarray(pixels).save(target)
    mask = Image.new("L", SIZE, 0)
    mask.paste(255, BOX)
    mask_path = folder / "mask.png"
    mask.save(mask_path)
    return target, mask_path


def call_swap(
    url: str, target: Path, mask: Path, lora: str, seed: int = 7, photos: list[Path] = (), likeness: float | None = None
) -> tuple[Image.Image, dict]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    settings = {"lora_scale": 1.0, "prompt": "a photo of a woman face", "strength": 0.5, "padding": 0.6}
    settings.update(steps=4, guidance=5.0, seed=seed)
    request = {"person": lora, "faces": [{"face": 0, "likeness": likeness}], "settings": settings}
    path, record = client.predict(
        json.dumps(request),
        handle_file(str(target)),
        handle_file(str(mask)),
        [handle_file(str(photo)) for photo in photos],
        None,
        api_name="/swap_request",
    )
    with Image.open(path) as image:
        image.load()
        return image, record


def test_a_swap_is_one_request_and_no_long_positional_endpoint(server: str) -> None:
    """Scripts see ``/swap_request`` (JSON and its files); the page's whole-form events are not an API."""
    from gradio_client import Client

    endpoints = Client(server, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    labels = [parameter["label"] for parameter in endpoints["/swap_request"]["parameters"]]
    assert len(labels) == 5 and labels[0].startswith("the swap as JSON")
    assert [p["label"] for p in endpoints["/train"]["parameters"]][-1].startswith("the training's settings as JSON")
    hidden = {"/swap", "/generate", "/try_strengths", "/auto_mask", "/assign", "/update_choice", "/same_for_everyone"}
    assert not hidden & set(endpoints)
    counts = {name: len(endpoint["parameters"]) for name, endpoint in endpoints.items()}
    long = {name: count for name, count in counts.items() if count > 6}
    assert not long, f"endpoints with a long positional list: {long}"


def test_a_clip_is_one_request_too(server: str, astronaut: Image.Image, tmp_path: Path) -> None:
    """``/swap_video`` takes the clip, a ClipRequest as JSON and a reference photo: faces by person, per face."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from video_factory import around_face, camera_move, write_clip

    from faceswap_core.media import probe, read_frames

    clip = write_clip(tmp_path / "zoom.mp4", camera_move(around_face(astronaut, 1.3), 3, size=96, kind="zoom"))
    client = Client(server, verbose=False)
    request = {"faces": [{"face": 0, "person": "alice"}], "settings": {"steps": 3, "seed": 4, "fast": False}}
    video, _, message = client.predict(handle_file(str(clip)), json.dumps(request), None, api_name="/swap_video")
    played = video["video"] if isinstance(video, dict) else video
    assert "3 frames" in message and len(list(read_frames(probe(played)))) == 3
    with pytest.raises(AppError, match="a clip's request names its 'clip' and takes no 'mask'"):
        client.predict(handle_file(str(clip)), json.dumps({"mask": "/etc/passwd"}), None, api_name="/swap_video")


def test_swap_endpoint_takes_an_image_and_a_mask_file(server: str, inputs: tuple[Path, Path]) -> None:
    target, mask = inputs
    image, record = call_swap(server, target, mask, "")
    assert image.size == SIZE
    [face] = record["faces"]
    assert face["seed"] == 7 and face["mask"] == "given" and face["lora"] is None
    original = np.asarray(Image.open(target).convert("RGB"))
    outside = np.ones(original.shape[:2], bool)
    outside[BOX[1] : BOX[3], BOX[0] : BOX[2]] = False
    assert np.array_equal(np.asarray(image.convert("RGB"))[outside], original[outside])
    assert json.loads(image.text["parameters"])["faces"][0]["seed"] == 7  # the full PNG with its parameters


def test_two_clients_with_different_loras_get_their_own_results(server: str, inputs: tuple[Path, Path]) -> None:
    target, mask = inputs
    sequential = {name: np.asarray(call_swap(server, target, mask, name)[0]) for name in ("alice", "bob")}
    assert not np.array_equal(sequential["alice"], sequential["bob"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(call_swap, server, target, mask, name) for name in ("bob", "alice")}
        together = {name: future.result() for name, future in futures.items()}
    for name, (image, record) in together.items():
        assert record["faces"][0]["lora"] == name
        assert np.array_equal(np.asarray(image), sequential[name])


def test_library_errors_reach_the_client_with_their_message(server: str, inputs: tuple[Path, Path]) -> None:
    from gradio_client.exceptions import AppError

    target, mask = inputs
    with pytest.raises(AppError, match="person 'nobody' not found"):
        call_swap(server, target, mask, "nobody")


def test_photos_of_a_person_and_a_person_from_photos_through_the_api(
    server: str, inputs: tuple[Path, Path], face_photo: Path
) -> None:
    target, mask = inputs
    original = np.asarray(Image.open(target).convert("RGB"))
    outside = np.ones(original.shape[:2], bool)
    outside[BOX[1] : BOX[3], BOX[0] : BOX[2]] = False
    plain = np.asarray(call_swap(server, target, mask, "")[0].convert("RGB"))
    image, record = call_swap(server, target, mask, "", photos=[face_photo])
    [face] = record["faces"]
    assert face["identity_scale"] == 0.7 and len(face["identity_photos"]) == 1 and face["person"] is None
    steered = np.asarray(image.convert("RGB"))
    assert np.array_equal(steered[outside], original[outside]) and not np.array_equal(steered, plain)
    off = np.asarray(call_swap(server, target, mask, "", photos=[face_photo], likeness=0)[0].convert("RGB"))
    assert np.array_equal(off, plain)
    image, record = call_swap(server, target, mask, "carl")  # the person's own photo, by name
    assert record["faces"][0]["person"] == "carl" and record["faces"][0]["lora"] is None
    assert len(record["faces"][0]["identity_photos"]) == 1
    assert not np.array_equal(np.asarray(image.convert("RGB")), plain)
