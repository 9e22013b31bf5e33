"""Photos of a person as an image prompt, through the engine: no training, cached, combinable with a LoRA."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine, FaceTarget
from faceswap_core.errors import NoFaceError
from faceswap_core.identity_adapter import save_tiny_ip_adapter
from faceswap_core.images import load_image
from faceswap_core.settings import ModelSpec, SwapSettings

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
QUICK = SwapSettings(steps=6, seed=4, color_match=False)


@pytest.fixture(scope="module")
def photos() -> dict[str, tuple[str, ...]]:
    found = {name: tuple(str(PEOPLE / f"{name}{n}.jpg") for n in ("", "2")) for name in ("obama", "biden")}
    if not all(Path(p).is_file() for group in found.values() for p in group):
        pytest.skip("shared photos of two people not present")
    return found


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"))


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("identity-loras")
    make_test_lora(tiny_model_dir, root / "alice", seed=1)
    return root


def _engine(tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path) -> Engine:
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu", ip_adapter=str(adapter_dir)), lora_dir=lora_dir)


def test_photos_of_a_person_steer_the_face_without_training(
    tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path, photos: dict[str, tuple[str, ...]]
) -> None:
    target = load_image(PEOPLE / "two_people.jpg")
    engine = _engine(tiny_model_dir, adapter_dir, lora_dir)
    plain = engine.swap(target, settings=QUICK)  # before any photos: the adapter is not even created
    assert engine._identity is None
    obama = engine.swap(target, settings=replace(QUICK, identity_photos=photos["obama"]))
    biden = engine.swap(target, settings=replace(QUICK, identity_photos=photos["biden"]))
    inside = np.asarray(plain.mask) > 0
    pixels = {name: np.asarray(result.image) for name, result in (("plain", plain), ("obama", obama), ("biden", biden))}
    assert not np.array_equal(pixels["obama"][inside], pixels["plain"][inside])
    assert not np.array_equal(pixels["obama"][inside], pixels["biden"][inside])
    for result in (obama, biden):
        assert np.array_equal(np.asarray(result.image)[~inside], np.asarray(target)[~inside])
    face = obama.record["faces"][0]
    assert face["identity_scale"] == 0.7 and len(face["identity_photos"]) == 2 and "identity_adapter" in face

    # Once loaded, a swap without photos runs the adapter at scale 0: the same as never loading it.
    again = engine.swap(target, settings=QUICK)
    assert (
        np.array_equal(np.asarray(again.image), pixels["plain"]) and "identity_photos" not in again.record["faces"][0]
    )
    zero = engine.swap(target, settings=replace(QUICK, identity_photos=photos["obama"], identity_scale=0.0))
    assert np.array_equal(np.asarray(zero.image), pixels["plain"])

    # The photos are encoded once per person, however often they are used.
    assert engine.identity.encode_count == 2
    engine.swap(target, settings=replace(QUICK, identity_photos=tuple(reversed(photos["obama"]))))
    assert engine.identity.encode_count == 2


def test_photos_combine_with_a_lora_and_with_several_faces(
    tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path, photos: dict[str, tuple[str, ...]]
) -> None:
    target = load_image(PEOPLE / "two_people.jpg")
    engine = _engine(tiny_model_dir, adapter_dir, lora_dir)
    lora_only = engine.swap(target, settings=replace(QUICK, lora="alice"))
    both = engine.swap(target, settings=replace(QUICK, lora="alice", identity_photos=photos["obama"]))
    assert not np.array_equal(np.asarray(lora_only.image), np.asarray(both.image))
    face = both.record["faces"][0]
    assert face["adapters"] == [{"lora": "alice", "weight": 1.0}] and face["identity_scale"] == 0.4  # beside a LoRA
    pair = engine.swap(
        target,
        [
            FaceTarget(replace(QUICK, identity_photos=photos["obama"]), 0),
            FaceTarget(replace(QUICK, identity_photos=photos["biden"]), 1),
        ],
    )
    first, second = pair.record["faces"]
    assert first["identity_photos"] != second["identity_photos"]


def test_a_photo_without_a_face_is_a_clear_error(
    tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path, tmp_path: Path
) -> None:
    wall = tmp_path / "wall.png"
    Image.new("RGB", (160, 160), (90, 100, 110)).save(wall)
    engine = _engine(tiny_model_dir, adapter_dir, lora_dir)
    from skimage import data

    with pytest.raises(NoFaceError, match="wall.png"):
        engine.swap(Image.fromarray(data.astronaut()), settings=replace(QUICK, identity_photos=(str(wall),)))


def test_photos_work_in_fast_mode_too(
    tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path, photos: dict[str, tuple[str, ...]], tmp_path: Path
) -> None:
    """The image prompt and the few-step sampler are separate contributions: both apply, neither leaks."""
    from faceswap_core.fast import save_tiny_fast_lora

    spec = ModelSpec(
        str(tiny_model_dir),
        device="cpu",
        ip_adapter=str(adapter_dir),
        fast_lora=str(save_tiny_fast_lora(tmp_path / "lcm", tiny_model_dir, seed=2)),
    )
    engine = Engine(spec, lora_dir=lora_dir)
    target = load_image(PEOPLE / "two_people.jpg")
    fast = replace(QUICK, fast=True)
    plain = engine.swap(target, settings=fast)
    obama = engine.swap(target, settings=replace(fast, identity_photos=photos["obama"]))
    face = obama.record["faces"][0]
    assert (face["mode"], face["scheduler"], face["unet_evaluations"]) == ("fast", "LCMScheduler", 4)
    assert face["identity_scale"] == 0.7 and len(face["identity_photos"]) == 2
    inside = np.asarray(obama.mask) > 0
    assert not np.array_equal(np.asarray(obama.image)[inside], np.asarray(plain.image)[inside])
    assert np.array_equal(np.asarray(obama.image)[~inside], np.asarray(target)[~inside])
    quality = engine.swap(target, settings=replace(QUICK, identity_photos=photos["obama"])).record["faces"][0]
    assert quality["mode"] == "quality" and quality["scheduler"] != "LCMScheduler"  # the scheduler was put back


def test_a_lora_loads_after_the_adapter_was_loaded_during_a_swap(
    tiny_model_dir: Path, adapter_dir: Path, lora_dir: Path, tmp_path: Path, astronaut: Image.Image
) -> None:
    """The adapter loads inside a swap's inference mode; its layers must stay ordinary tensors, or peft
    cannot wrap them when the next LoRA (here fast mode's) is loaded."""
    from faceswap_core.fast import save_tiny_fast_lora

    fast_lora = save_tiny_fast_lora(tmp_path / "lcm", tiny_model_dir).parent
    spec = ModelSpec(str(tiny_model_dir), device="cpu", ip_adapter=str(adapter_dir), fast_lora=str(fast_lora))
    engine = Engine(spec, lora_dir=lora_dir)
    astronaut.save(tmp_path / "photo.png")
    engine.swap(astronaut, settings=replace(QUICK, identity_photos=(str(tmp_path / "photo.png"),)))
    fast = engine.swap(astronaut, settings=replace(QUICK, fast=True, identity_photos=(str(tmp_path / "photo.png"),)))
    assert fast.record["faces"][0]["mode"] == "fast" and len(fast.record["faces"][0]["identity_photos"]) == 1
