"""People: added from a few photos in seconds, upgraded in place by training, swapped in by name."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.cli import main
from faceswap_core.engine import Engine
from faceswap_core.errors import DatasetError, ModelLoadError, SettingsError
from faceswap_core.face_choice import person_entries
from faceswap_core.identity_adapter import save_tiny_ip_adapter
from faceswap_core.loras import LoraInfo, LoraRegistry
from faceswap_core.people import PHOTOS_DIR, People, Person
from faceswap_core.settings import IDENTITY_SCALE, IDENTITY_SCALE_WITH_LORA, ModelSpec, SwapSettings, TrainSettings
from faceswap_core.training import train_lora

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
TRAIN = TrainSettings(steps=2, rank=4, resolution=64, checkpoint_every=1, flip=False, sample_every_checkpoint=False)
QUICK = SwapSettings(steps=6, seed=4, color_match=False)


@pytest.fixture(scope="module")
def obama() -> list[Path]:
    photos = [PEOPLE / "obama.jpg", PEOPLE / "obama2.jpg"]
    if not all(photo.is_file() for photo in photos):
        pytest.skip("shared photos of people not present")
    return photos


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"))


def test_a_person_from_photos_is_listed_with_what_it_has(obama: list[Path], tmp_path: Path) -> None:
    people = People(LoraRegistry(tmp_path))
    person, report = people.add("barack", obama)
    assert [p.name for p in person.photos] == ["obama.png", "obama2.png"]
    assert all(p.parent == tmp_path / "barack" / PHOTOS_DIR for p in person.photos)
    assert Image.open(person.photos[0]).size == (1024, 1024) and not report.skipped
    assert person.lora is None and person.label == "barack (2 photos)"
    assert person.likeness == IDENTITY_SCALE.default
    assert people.names() == ["barack"] and people.get("barack") == person
    assert [entry.name for entry in tmp_path.iterdir()] == ["barack"]  # no work folder left behind


def test_bad_names_and_photos_are_refused_and_leave_nothing(obama: list[Path], tmp_path: Path) -> None:
    people = People(LoraRegistry(tmp_path))
    for name in ("../escape", "/abs", ".hidden", "", "x" * 65):
        with pytest.raises(SettingsError):
            people.add(name, obama)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), "gray").save(blank)
    with pytest.raises(DatasetError, match="none of the 1 photos"):
        people.add("nobody", [blank])
    assert list(tmp_path.iterdir()) == [blank]
    people.add("barack", [obama[0], blank, PEOPLE / "two_people.jpg"])  # faceless and group photos are skipped
    assert [p.name for p in people.get("barack").photos] == ["obama.png"]
    with pytest.raises(SettingsError, match="already exists"):
        people.add("barack", obama)
    with pytest.raises(ModelLoadError, match="not found"):
        People(LoraRegistry(tmp_path, allow_paths=False)).get(str(tmp_path / "barack"))


def test_settings_follow_what_the_person_has(tmp_path: Path) -> None:
    photos = tuple(tmp_path / f"{n}.png" for n in range(10))
    info = LoraInfo("anna", tmp_path / "anna" / "pytorch_lora_weights.safetensors")
    photos_only = Person("anna", photos).settings(QUICK)
    assert photos_only.lora is None and photos_only.identity_scale == IDENTITY_SCALE.default
    assert len(photos_only.identity_photos) == 8  # MAX_IDENTITY_PHOTOS
    both = Person("anna", photos, info).settings(QUICK)
    assert both.lora == "anna" and both.identity_scale == IDENTITY_SCALE_WITH_LORA and both.identity_photos
    off = Person("anna", photos, info).settings(QUICK, likeness=0)
    assert off.lora == "anna" and off.identity_photos == () and off.identity_scale is None
    ad_hoc = SwapSettings(identity_photos=("x.jpg",), identity_scale=0.5)
    lora_only = Person("anna", (), info).settings(ad_hoc)
    assert lora_only.identity_photos == ("x.jpg",) and lora_only.identity_scale == 0.5


def test_training_upgrades_the_same_person_and_keeps_its_photos(
    obama: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    people = People(LoraRegistry(tmp_path))
    before = people.add("barack", obama)[0]
    photo_bytes = [p.read_bytes() for p in before.photos]
    with pytest.raises(SettingsError, match="already has its photos"):
        train_lora(obama, "barack", base_model=str(tiny_model_dir), settings=TRAIN, lora_dir=tmp_path)
    stop = threading.Event()
    stop.set()  # cancelled before the first step: the person is as it was
    train_lora(None, "barack", base_model=str(tiny_model_dir), settings=TRAIN, lora_dir=tmp_path, cancel=stop)
    assert [e.name for e in (tmp_path / "barack").iterdir()] == [PHOTOS_DIR]
    assert people.get("barack") == before

    result = train_lora(None, "barack", base_model=str(tiny_model_dir), settings=TRAIN, lora_dir=tmp_path)
    assert result.final_weights == tmp_path / "barack" / "pytorch_lora_weights.safetensors"
    trained = people.get("barack")
    assert trained.lora is not None and trained.label == "barack (trained + 2 photos)"
    assert [p.read_bytes() for p in trained.photos] == photo_bytes
    assert trained.likeness == IDENTITY_SCALE_WITH_LORA
    assert people.names() == ["barack", "barack/checkpoint-2", "barack/checkpoint-1"]
    assert people.get("barack/checkpoint-1").photos == trained.photos
    assert people.get("barack/checkpoint-1").label == "barack, save at step 1"
    labels = " ".join(label for label, _ in person_entries(people.loras))  # the user's words, not the trainer's
    assert "barack, save at step 2" in labels
    assert not any(word in labels.lower() for word in ("lora", "checkpoint", "base model")), labels
    with pytest.raises(SettingsError, match="already exists"):  # trained: no second upgrade, resume instead
        train_lora(None, "barack", base_model=str(tiny_model_dir), settings=TRAIN, lora_dir=tmp_path)


def test_lora_files_from_elsewhere_are_people_with_a_lora_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    make_test_lora(tiny_model_dir, tmp_path / "carol", seed=1)
    make_test_lora(tiny_model_dir, tmp_path / "tmp", seed=2).rename(tmp_path / "dave.safetensors")
    found = {person.name: person for person in People(LoraRegistry(tmp_path)).list()}
    assert found["carol"].label == "carol (trained)" and found["dave"].label == "dave (trained)"
    assert found["carol"].likeness == 0.0 and found["carol"].settings(QUICK).identity_photos == ()


def test_a_person_from_photos_swaps_like_its_photos(
    obama: list[Path], tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path, astronaut: Image.Image
) -> None:
    """The person's aligned photos drive the adapter exactly as the photos themselves would."""
    person = People(LoraRegistry(tmp_path)).add("barack", obama)[0]
    engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu", ip_adapter=str(adapter_dir)), lora_dir=tmp_path)
    as_person = engine.swap(astronaut, settings=person.settings(QUICK))
    direct = engine.swap(
        astronaut,
        settings=SwapSettings(
            **{
                **QUICK.__dict__,
                "identity_photos": tuple(map(str, person.photos)),
                "identity_scale": IDENTITY_SCALE.default,
            }
        ),
    )
    plain = engine.swap(astronaut, settings=QUICK)
    assert np.array_equal(np.asarray(as_person.image), np.asarray(direct.image))
    assert not np.array_equal(np.asarray(as_person.image), np.asarray(plain.image))
    [face] = as_person.record["faces"]
    assert face["identity_scale"] == IDENTITY_SCALE.default and len(face["identity_photos"]) == 2


def test_cli_adds_lists_and_swaps_a_person(
    obama: list[Path], tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people"
    assert main(["person", "add", "barack", *map(str, obama), "--lora-dir", str(people)]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["label"] == "barack (2 photos)" and added["lora"] is None and added["skipped"] == []
    assert added["unlike"] == {}
    assert main(["person", "add", "barack", str(obama[0]), "--lora-dir", str(people)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["person", "list", "--lora-dir", str(people)]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["barack"]

    target = tmp_path / "target.png"
    Image.open(obama[0]).convert("RGB").resize((512, 512)).save(target)
    model = [
        "--base",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--lora-dir",
        str(people),
        "--ip-adapter",
        str(adapter_dir),
    ]
    swap = ["swap", str(target), "--steps", "6", "--seed", "3", *model]
    assert main([*swap, "-o", str(tmp_path / "a.png"), "--person", "barack"]) == 0
    [face] = json.loads(capsys.readouterr().out)["faces"]
    assert face["identity_scale"] == IDENTITY_SCALE.default and len(face["identity_photos"]) == 2
    assert main([*swap, "-o", str(tmp_path / "b.png"), "--face", "0:barack", "--identity-scale", "0"]) == 0
    [face] = json.loads(capsys.readouterr().out)["faces"]
    assert not face.get("identity_photos")
    assert main([*swap, "-o", str(tmp_path / "c.png"), "--person", "nobody"]) == 2
    assert "not found" in capsys.readouterr().err
