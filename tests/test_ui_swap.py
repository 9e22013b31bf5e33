"""The Swap tab's handlers called directly (no server, no browser) on the tiny model and real photos."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.face_choice import KEEP, NO_LORA
from faceswap_core.faces.masks import mask_scale
from faceswap_core.fast import save_tiny_fast_lora
from faceswap_core.identity_adapter import save_tiny_ip_adapter
from faceswap_core.images import png_metadata
from faceswap_core.settings import (
    EDITOR_MAX_SIDE,
    IDENTITY_SCALE,
    MASK_FEATHER_FRACTION,
    MASK_GROW_FRACTION,
    MAX_STRENGTH_CANDIDATES,
    MAX_TRAIN_PHOTOS,
    SEARCH_STRENGTHS,
    ModelSpec,
)
from faceswap_core.sweep import parse_strengths
from faceswap_core.ui.common import by_name, editor_mask, editor_value
from faceswap_core.ui.person_picker import NO_PHOTOS_INFO, person_choices, refresh_lora_picker
from faceswap_core.ui.swap_handlers import SwapHandlers
from faceswap_core.ui.swap_photo import NO_FACE_NOTE, mask_sizes

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
QUICK = {"steps": 4, "guidance": 5.0, "seed": 3, "lora_scale": 1.0, "negative": "", "padding": 0.6}
API_QUICK = {"lora_scale": 1.0, "padding": 0.6, "steps": 4, "guidance": 5.0, "seed": 2, "strength": 0.5}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    lora_dir = tmp_path_factory.mktemp("swap-tab-loras")
    make_test_lora(tiny_model_dir, lora_dir / "alice", seed=1)
    make_test_lora(tiny_model_dir, lora_dir / "bob", seed=2)
    (lora_dir / "bob" / "training.json").write_text(json.dumps({"class_word": "man"}))
    fast_lora = save_tiny_fast_lora(tmp_path_factory.mktemp("fast-lora"), tiny_model_dir).parent
    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"))
    spec = ModelSpec(str(tiny_model_dir), device="cpu", fast_lora=str(fast_lora), ip_adapter=str(adapter))
    return Engine(spec, lora_dir=lora_dir)


@pytest.fixture(scope="module")
def swap(engine: Engine) -> SwapHandlers:
    return SwapHandlers(engine)


@pytest.fixture(scope="module")
def served(engine: Engine) -> SwapHandlers:
    """The handlers as the app builds them: people are names in the folder, never paths (``allow_paths=False``)."""
    return SwapHandlers(Engine(engine.model, lora_dir=engine.loras.folder, allow_paths=False))


@pytest.fixture(scope="module")
def two_people() -> Path:
    path = PEOPLE / "two_people.jpg"
    if not path.is_file():
        pytest.skip("shared photos of two people not present")
    return path


def loaded(swap: SwapHandlers, path: Path | str, person: str = "alice") -> dict[str, Any]:
    """The fields after uploading ``path`` with ``person`` picked, as the page would send them next."""
    photo, value, picker, summary, note = swap.load_photo(str(path), person, 0.5, "")
    fields = {"photo": photo, "editor": value, "face": 0, "person": person, "strength": 0.5, "prompt": ""}
    return {**fields, "size_from_face": True, "grow": 0, "feather": 0, "note": note, "picker": picker, **QUICK}


def api(
    swap: SwapHandlers,
    image: Path | str,
    person: str = "",
    faces: list[dict[str, Any]] | None = None,
    photos: list[str] | None = None,
    **settings: Any,
) -> tuple[str, dict[str, Any]]:
    """``/swap_request`` as a script calls it: the request as JSON, its files beside it."""
    request: dict[str, Any] = {"person": person, "settings": {**API_QUICK, **settings}}
    if faces is not None:
        request["faces"] = faces
    return swap.api_request(json.dumps(request), str(image), identity_photos=photos, progress=None)


def painted(fields: dict[str, Any]) -> np.ndarray:
    return np.asarray(editor_mask(fields["editor"]))


def test_upload_masks_the_largest_face_on_a_numbered_display_copy(swap: SwapHandlers, tmp_path: Path) -> None:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    fields = loaded(swap, path)
    photo = fields["photo"]
    assert "1 face found" in fields["note"] and photo.original.size == (512, 512) and photo.scale == 1.0
    shown = Image.open(fields["editor"]["background"])
    assert shown.size == (512, 512) and not np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(photo.original))
    face = photo.faces[0]
    mask = painted(fields)
    cx, cy = (round(v) for v in face.center)
    assert mask[cy, cx] == 255 and mask[0, 0] == 0 and photo.choices[0].person == "alice"
    grow, feather = mask_sizes(photo)  # the sliders show the sizes the automatic mask used, not 0
    width = mask_scale(face)
    assert grow == round(MASK_GROW_FRACTION * width) and feather == round(MASK_FEATHER_FRACTION * width) > 0


def test_a_big_photo_is_edited_small_and_swapped_full_size(swap: SwapHandlers, tmp_path: Path) -> None:
    from skimage import data

    big = Image.new("RGB", (6000, 4000), (90, 100, 110))  # 24 MP, as a phone takes
    big.paste(Image.fromarray(data.astronaut()).resize((4000, 4000), Image.BILINEAR), (1000, 0))
    path = tmp_path / "phone.jpg"
    big.save(path, quality=90)
    original = np.asarray(Image.open(path).convert("RGB"))
    fields = loaded(swap, path)
    photo = fields["photo"]
    assert max(photo.display_size) == EDITOR_MAX_SIDE and photo.original.size == (6000, 4000)
    assert Image.open(fields["editor"]["background"]).size == photo.display_size
    (before, after), download, record, *_ = swap.generate(fields)
    # the comparison is sent at display size, as JPEG files (encoded in milliseconds)
    assert Image.open(before).size == Image.open(after).size == photo.display_size
    assert Image.open(after).format == "JPEG"
    full = Image.open(download.value["path"])
    assert full.size == (6000, 4000)  # the download is the full-size result
    mask = np.asarray(editor_mask(fields["editor"]).resize((6000, 4000), Image.BILINEAR))
    outside = mask == 0
    assert np.array_equal(np.asarray(full.convert("RGB"))[outside], original[outside])
    assert record["faces"][0]["face"] == 0 and record["image_size"] == [6000, 4000]


def test_each_face_gets_its_own_person_and_the_paint_follows(swap: SwapHandlers, two_people: Path) -> None:
    fields = loaded(swap, two_people)
    photo = fields["photo"]
    assert len(photo.faces) == 2 and fields["picker"].choices == [("Face 1 (largest)", 0), ("Face 2", 1)]
    second = photo.faces[1]
    cx, cy = (round(v) for v in second.center)
    assert painted(fields)[cy, cx] == 0  # only face 1 starts masked

    # Choosing face 2 shows it as kept; picking bob for it paints it too.
    person, _, _, likeness = swap.choose_face(photo, 1)
    assert person.value == KEEP and person.label == "Person for face 2" and not likeness.interactive
    photo, value, summary, _, _ = swap.assign({**fields, "face": 1, "person": "bob", "strength": 0.6})
    fields["editor"] = value
    assert painted(fields)[cy, cx] == 255 and "2: **bob** (0.6)" in summary and "1: **alice** (0.5)" in summary

    # Face 1 kept: its paint goes, and what is painted is exactly what gets replaced.
    photo, value, summary, _, _ = swap.assign({**fields, "face": 0, "person": KEEP})
    fields["editor"] = value
    first = photo.faces[0]
    fx, fy = (round(v) for v in first.center)
    assert painted(fields)[fy, fx] == 0 and "1: kept" in summary
    (_, after), download, record, *_ = swap.generate(fields)
    assert [(f["face"], f["lora"], f["strength"], f["mask"]) for f in record["faces"]] == [(1, "bob", 0.6, "given")]
    assert record["faces"][0]["prompt"] == "a photo of a man face"  # bob's class word
    result = np.asarray(Image.open(download.value["path"]).convert("RGB"))
    original = np.asarray(photo.original)
    mask = painted(fields)
    assert np.array_equal(result[mask == 0], original[mask == 0])
    assert (result[mask == 255] != original[mask == 255]).any()

    photo, value, summary, _ = swap.same_for_everyone({**fields, "person": "alice"})
    assert "1: **alice**" in summary and "2: **alice**" in summary and len(photo.choices) == 2
    assert np.asarray(editor_mask(value))[fy, fx] == 255


def test_strength_and_prompt_belong_to_the_chosen_face(swap: SwapHandlers, two_people: Path) -> None:
    fields = loaded(swap, two_people)
    photo, summary = swap.update_choice({**fields, "strength": 0.35, "prompt": "smiling, studio light"})
    assert photo.choices[0].strength == 0.35 and photo.choices[0].prompt == "smiling, studio light"
    photo, summary = swap.update_choice({**fields, "face": 1, "strength": 0.9})
    assert 1 not in photo.choices  # a kept face stays kept


def test_nothing_painted_or_no_face_say_what_to_do(swap: SwapHandlers, tmp_path: Path) -> None:
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (120, 130, 140)).save(blank)
    fields = loaded(swap, blank)
    assert fields["note"] == NO_FACE_NOTE and "**" not in fields["note"]
    with pytest.raises(gr.Error, match="Nothing is painted"):
        swap.generate(fields)
    with pytest.raises(gr.Error, match="No face found: paint over"):
        swap.auto_mask(fields)
    stroke = Image.new("L", (200, 160), 0)
    stroke.paste(255, (60, 40, 140, 120))
    fields["editor"] = editor_value(Image.new("RGB", (200, 160)), stroke)
    (_, after), _, record, *_ = swap.generate(fields)
    assert record["faces"][0]["face"] is None and record["faces"][0]["lora"] == "alice"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(gr.Error, match="not an image"):
        swap.load_photo(str(not_an_image), "alice", 0.5, "")
    with pytest.raises(gr.Error, match="Upload a target photo"):
        swap.generate({"editor": None, "photo": None})


def test_hostile_values_get_one_clear_line(swap: SwapHandlers, tmp_path: Path) -> None:
    fields = loaded(swap, PEOPLE / "obama.jpg" if (PEOPLE / "obama.jpg").is_file() else _astronaut(tmp_path))
    for changes, message in (
        ({"strength": float("nan")}, "strength must be a finite number"),
        ({"steps": None}, "steps must be a number"),
        ({"seed": 1e30}, "seed must be between -1 and"),
        ({"person": "../../etc/passwd"}, "not found; pick one from the list"),
        ({"person": "/abs/path/x.safetensors"}, "not found; pick one from the list"),
        ({"likeness": float("nan")}, "likeness must be a finite number"),
        ({"likeness": 9}, "likeness must be between 0 and 1.5"),
        ({"references": ["x.png"] * 9}, "at most 8 are used"),
        ({"prompt": "x" * 5000}, "at most 2000"),
    ):
        with pytest.raises(gr.Error, match=message):
            editor = editor_value(fields["photo"].original, editor_mask(fields["editor"]))
            swap.generate({**fields, **changes, "photo": None, "editor": editor})
    with pytest.raises(gr.Error, match=f"try at most {MAX_STRENGTH_CANDIDATES} at once"):
        swap.try_strengths({**fields, "strengths": "1.0 " * 60})


def _astronaut(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_try_strengths_shows_ranked_face_crops_where_the_result_is(swap: SwapHandlers, tmp_path: Path) -> None:
    path = _astronaut(tmp_path)
    portrait = Image.open(path).crop((100, 0, 400, 512))  # a portrait photo: a centre crop would cut the face
    portrait.save(path)
    fields = loaded(swap, path)
    fields.update(strengths="0.3, 0.6", references=[str(path)])
    slider, download, record, gallery, candidates, tabs = swap.try_strengths(fields)
    assert gallery.visible and len(gallery.value) == len(candidates) == 2 and tabs.selected == "result"
    crops = [Image.open(item["image"]["path"]) for item in gallery.value]
    assert all(max(crop.size) <= 256 for crop in crops) and crops[0].size != (300, 300)
    captions = [item["caption"] for item in gallery.value]
    assert all("strength" in c and "likeness" in c for c in captions) and "most alike first" in gallery.label
    distances = [c["record"]["identity_distance"] for c in candidates]
    assert distances == sorted(distances) and record["rank"] == 0
    picked = swap.show_candidate(fields["photo"], candidates, SimpleNamespace(index=1))
    assert picked[2] == candidates[1]["record"]
    # the one picked is the face's strength from now on: the slider, the summary and the next Generate
    chosen = candidates[1]["strength"]
    assert picked[3].value == chosen  # (the summary line is for photos of several faces)
    assert fields["photo"].choices[0].strength == chosen
    assert swap.show_candidate(fields["photo"], candidates, SimpleNamespace(index=99)) == (gr.skip(),) * 5


def test_the_api_takes_one_face_or_a_list(
    swap: SwapHandlers, served: SwapHandlers, two_people: Path, tmp_path: Path
) -> None:
    path, record = api(swap, two_people, "alice")
    assert [(f["face"], f["lora"]) for f in record["faces"]] == [(0, "alice")]
    faces = [{"face": 1, "person": "bob", "strength": 0.7}, {"face": 0}]
    path, record = api(swap, two_people, "alice", faces)
    assert [(f["face"], f["lora"], f["strength"]) for f in record["faces"]] == [(1, "bob", 0.7), (0, "alice", 0.5)]
    assert json.loads(png_metadata(path)["parameters"])["faces"][0]["lora"] == "bob"
    with pytest.raises(gr.Error, match="not found"):
        api(served, two_people, "../alice")
    with pytest.raises(gr.Error, match="there is no face 4"):
        api(swap, two_people, "", [{"face": 4}])


def test_the_fast_switch_runs_a_few_steps(swap: SwapHandlers, tmp_path: Path) -> None:
    fields = loaded(swap, _astronaut(tmp_path))
    _, _, record, *_ = swap.generate({**fields, "fast": True})
    face = record["faces"][0]
    assert (face["mode"], face["steps_run"], face["unet_evaluations"]) == ("fast", 4, 4)
    _, _, record, *_ = swap.generate({**fields, "fast": False})
    assert record["faces"][0]["mode"] == "quality"
    path, record = api(swap, tmp_path / "astronaut.png", steps=30, guidance=7.0, seed=1, fast=True)
    assert record["faces"][0]["mode"] == "fast"


def test_face_list_and_strength_parsing(swap: SwapHandlers, tmp_path: Path) -> None:
    from faceswap_core.requests import SwapRequest

    assert parse_strengths("0.3, 0.45 0.6") == [0.3, 0.45, 0.6]
    assert parse_strengths("  ") == list(SEARCH_STRENGTHS)
    with pytest.raises(Exception, match="not a number"):
        parse_strengths("0.3, lots")
    request = SwapRequest.from_json(
        '{"person": "alice", "faces": [{"face": 2, "person": "bob"}]}', files={"image": "x"}
    )
    assert request.faces[0].face == 2 and request.faces[0].person == "bob" and request.faces[0].strength is None
    image = tmp_path / "gray.png"
    Image.new("RGB", (64, 64), "gray").save(image)
    for faces, message in (  # refused by /swap_request before the photo is decoded
        ("{", "not valid JSON"),
        ('{"face": 0}', "faces must be a JSON list"),
        ('[{"face": -1}]', "face must be an index"),
        ('[{"face": 0}, {"face": 0}]', "more than once"),
        ('[{"face": 0, "path": "/x"}]', "unknown field"),
    ):
        with pytest.raises(gr.Error, match=message):
            swap.api_request(f'{{"faces": {faces}}}', str(image), progress=None)


def test_picker_lists_keep_base_and_every_lora(engine: Engine, swap: SwapHandlers, tiny_model_dir: Path) -> None:
    values = [value for _, value in person_choices(engine)]
    assert values[:2] == [KEEP, NO_LORA] and "alice" in values
    make_test_lora(tiny_model_dir, engine.loras.folder / "carol", seed=3)
    picker = refresh_lora_picker(engine, "alice", select="carol")
    assert ("carol (trained)", "carol") in picker.choices and picker.value == "carol"
    assert refresh_lora_picker(engine, "gone").value == NO_LORA
    text, prompt = swap.describe_lora("bob")
    assert "a man" in text and prompt.placeholder == "a photo of a man face"


def test_settings_arrive_by_field_name() -> None:
    first, second = gr.Textbox(), gr.Number()
    seen = {}
    wired = by_name(lambda fields: seen.update(fields) or "ok", {"prompt": first, "steps": second})
    assert wired({first: "hello", second: 4}) == "ok" and seen == {"prompt": "hello", "steps": 4}
    with_progress = by_name(lambda fields, progress: progress, {"prompt": first}, progress=True)
    import inspect

    assert isinstance(inspect.signature(with_progress).parameters["progress"].default, gr.Progress)


# --- people: photos only, no training -----------------------------------------------------------------
@pytest.fixture(scope="module")
def photos_of() -> dict[str, list[str]]:
    found = {name: [str(PEOPLE / f"{name}{n}.jpg") for n in ("", "2")] for name in ("obama", "biden")}
    if not all(Path(p).is_file() for group in found.values() for p in group):
        pytest.skip("shared photos of people not present")
    return found


def result_pixels(download: Any) -> np.ndarray:
    return np.asarray(Image.open(download.value["path"]).convert("RGB"))


def test_a_person_added_from_photos_swaps_in_at_once(
    swap: SwapHandlers, photos_of: dict[str, list[str]], tmp_path: Path
) -> None:
    fields = loaded(swap, _astronaut(tmp_path), person=NO_LORA)
    _, base, record, *_ = swap.generate(fields)
    assert record["faces"][0]["person"] is None and "identity_photos" not in record["faces"][0]

    picker, photo, editor, summary, note, slider, added, files, name = swap.add_person(
        {**fields, "new_name": "barack", "references": photos_of["obama"]}
    )
    assert ("barack (2 photos)", "barack") in picker.choices and picker.value == "barack"
    assert "Added **barack (2 photos)**" in added and files.value is None and name == ""
    assert photo.choices[0].person == "barack" and photo.choices[0].likeness == IDENTITY_SCALE.default
    assert slider.value == IDENTITY_SCALE.default and slider.interactive and "2 photos of barack" in slider.info
    fields.update(photo=photo, editor=editor, person="barack", likeness=IDENTITY_SCALE.default)
    _, download, record, *_ = swap.generate(fields)
    face = record["faces"][0]
    assert face["person"] == "barack" and face["lora"] is None
    assert face["identity_scale"] == IDENTITY_SCALE.default and len(face["identity_photos"]) == 2
    mask = painted(fields)
    original = np.asarray(photo.original)
    swapped, plain = result_pixels(download), result_pixels(base)
    assert np.array_equal(swapped[mask == 0], original[mask == 0])
    assert not np.array_equal(swapped[mask > 0], plain[mask > 0])
    text, _ = swap.describe_lora("barack")
    assert "2 photos" in text and "no training" in text

    photo, summary = swap.update_choice({**fields, "likeness": 0})  # likeness 0: the photos are left out
    assert photo.choices[0].likeness == 0
    _, download, record, *_ = swap.generate(fields)
    assert np.array_equal(result_pixels(download), plain) and "identity_photos" not in record["faces"][0]


def test_each_face_gets_its_own_person_from_photos(
    swap: SwapHandlers, engine: Engine, photos_of: dict[str, list[str]], two_people: Path
) -> None:
    from faceswap_core.people import People

    People(engine.loras).add("joe", photos_of["biden"])
    People(engine.loras).add("barack-2", photos_of["obama"][:1])
    fields = loaded(swap, two_people, person="joe")
    assert fields["photo"].choices[0].likeness is None  # the person's default
    photo, value, summary, _, slider = swap.assign({**fields, "face": 1, "person": "barack-2"})
    assert "1: **joe**" in summary and "2: **barack-2**" in summary and slider.value == IDENTITY_SCALE.default
    person, _, _, shown = swap.choose_face(photo, 0)
    assert person.value == "joe" and shown.interactive and "2 photos of joe" in shown.info
    _, download, record, *_ = swap.generate({**fields, "photo": photo, "editor": value})
    first, second = record["faces"]
    assert (first["face"], first["person"], len(first["identity_photos"])) == (0, "joe", 2)
    assert (second["face"], second["person"], len(second["identity_photos"])) == (1, "barack-2", 1)
    assert not set(first["identity_photos"]) & set(second["identity_photos"])
    mask = np.asarray(editor_mask(value))
    assert np.array_equal(result_pixels(download)[mask == 0], np.asarray(photo.original)[mask == 0])


def test_uploaded_photos_steer_a_person_without_photos(swap: SwapHandlers, tmp_path: Path) -> None:
    """The base model or a LoRA-only person takes the Swap tab's photos; nothing is saved."""
    astronaut = _astronaut(tmp_path)
    fields = loaded(swap, astronaut, person="alice")
    photo, slider, _ = swap.photos_changed(fields)
    assert not slider.interactive and slider.info == NO_PHOTOS_INFO
    *_, slider = swap.assign({"photo": None, "editor": None, "person": "alice", "references": [str(astronaut)]})
    assert slider.interactive and slider.value == 0.4  # picked before a photo is there: the slider follows
    photo, slider, _ = swap.photos_changed({**fields, "references": [str(astronaut)]})
    assert slider.interactive and slider.value == 0.4 and photo.choices[0].likeness == 0.4  # beside a LoRA
    _, _, record, *_ = swap.generate({**fields, "photo": photo, "references": [str(astronaut)]})
    face = record["faces"][0]
    assert face["lora"] == "alice" and face["identity_scale"] == 0.4 and len(face["identity_photos"]) == 1
    names = set(swap.people.names())
    _, _, record, *_ = swap.generate({**fields, "photo": photo, "references": None})
    assert "identity_photos" not in record["faces"][0] and set(swap.people.names()) == names


def test_adding_a_person_refuses_hostile_input_and_writes_nothing(
    swap: SwapHandlers, engine: Engine, photos_of: dict[str, list[str]], tmp_path: Path
) -> None:
    before = sorted(p.name for p in engine.loras.folder.iterdir())
    text = tmp_path / "notes.png"
    text.write_text("not a photo at all")
    cases = (
        ({"new_name": "../escape"}, "use up to 64 letters"),
        ({"new_name": "/abs/path"}, "use up to 64 letters"),
        ({"new_name": "a/b"}, "use up to 64 letters"),
        ({"new_name": ""}, "give the person a name"),
        ({"new_name": "alice"}, "already exists"),
        ({"references": None}, "Choose 1-5 photos"),
        ({"references": photos_of["obama"] * MAX_TRAIN_PHOTOS}, f"at most {MAX_TRAIN_PHOTOS}"),
        ({"references": [photos_of["obama"][0], str(text)]}, "notes.png"),
        ({"references": {"path": "/etc/passwd"}}, "list of image files"),
    )
    for changes, message in cases:
        with pytest.raises(gr.Error, match=message) as info:
            swap.add_person({"photo": None, "new_name": "newcomer", "references": photos_of["obama"], **changes})
        assert str(tmp_path) not in str(info.value)
    assert sorted(p.name for p in engine.loras.folder.iterdir()) == before

    blank = tmp_path / "empty-wall.png"
    Image.new("RGB", (300, 300), "gray").save(blank)
    picker, *skips, added, _, _ = swap.add_person(
        {"photo": None, "new_name": "maybe", "references": [photos_of["obama"][0], str(blank)]}
    )
    assert picker.value == "maybe" and skips[:4] == [gr.skip()] * 4
    assert "(1 photo)" in added and "Skipped: empty-wall.png" in added and str(tmp_path) not in added


def test_the_api_takes_people_and_photos(
    swap: SwapHandlers, served: SwapHandlers, photos_of: dict[str, list[str]], tmp_path: Path
) -> None:
    from faceswap_core.people import People

    if "barack-api" not in swap.people.names():
        People(swap.engine.loras).add("barack-api", photos_of["obama"])
    target, obama = str(_astronaut(tmp_path)), photos_of["obama"]
    plain, record = api(swap, target)
    person, record = api(swap, target, "barack-api")
    assert record["faces"][0]["person"] == "barack-api" and len(record["faces"][0]["identity_photos"]) == 2
    adhoc, record = api(swap, target, photos=obama)
    assert record["faces"][0]["identity_scale"] == IDENTITY_SCALE.default
    pixels = {name: np.asarray(Image.open(path)) for name, path in (("plain", plain), ("adhoc", adhoc))}
    assert not np.array_equal(pixels["plain"], pixels["adhoc"])
    off, _ = api(swap, target, faces=[{"face": 0, "likeness": 0}], photos=obama)
    assert np.array_equal(np.asarray(Image.open(off)), pixels["plain"])
    _, record = api(swap, target, faces=[{"face": 0, "person": "barack-api", "likeness": 0.3}])
    assert record["faces"][0]["person"] == "barack-api" and record["faces"][0]["identity_scale"] == 0.3
    for changes, message in (
        ({"faces": [{"face": 0, "likeness": float("nan")}]}, "NaN is not a number"),
        ({"faces": [{"face": 0, "likeness": 2}]}, "likeness must be between"),
        ({"photos": photos_of["obama"] * 5}, "at most 8"),
        ({"faces": [{"face": 0, "person": "../barack-api"}]}, "not found"),
    ):
        with pytest.raises(gr.Error, match=message):
            api(served, target, **changes)


def test_the_editor_shows_the_hand_cut_out_of_the_mask(swap: SwapHandlers, tmp_path: Path) -> None:
    """Upload paints the occlusion-aware mask; unticking the switch and Auto mask paints the landmark one."""
    from skimage import data

    from bench.occluders import composite
    from faceswap_core.faces import detect_faces

    astronaut = Image.fromarray(data.astronaut())
    scene, alpha = composite(astronaut, "hand", detect_faces(astronaut)[0])
    path = tmp_path / "hand.png"
    scene.save(path)
    fields = loaded(swap, path)
    hand = alpha >= 128
    with_hand_out = painted(fields)
    plain, _ = swap.auto_mask({**fields, "occlusion": False})
    plain = np.asarray(editor_mask(plain))
    inside = hand & (plain >= 128)
    assert inside.sum() > 500 and (with_hand_out[inside] < 128).mean() > 0.9
    assert (with_hand_out <= plain).all()
    again, _ = swap.auto_mask({**fields, "occlusion": True})
    assert np.array_equal(np.asarray(editor_mask(again)), with_hand_out)
    with pytest.raises(gr.Error, match="occlusion must be true or false"):
        swap.auto_mask({**fields, "occlusion": "no"})


def test_a_person_is_added_even_when_the_photo_expired_meanwhile(
    engine: Engine, photos_of: dict[str, list[str]], tmp_path: Path
) -> None:
    """Aligning the photos took longer than the photo is kept: the person is added all the same, and the note
    says why the person is not on the photo (before, the whole call failed after adding)."""
    handlers = SwapHandlers(engine)
    fields = loaded(handlers, _astronaut(tmp_path), person=NO_LORA)
    handlers.photos.ttl_s = 0.0
    handlers.photos.sweep()  # the photo is gone from the server
    picker, photo, *_, added, files, name = handlers.add_person(
        {**fields, "new_name": "late_barack", "references": photos_of["obama"]}
    )
    assert picker.value == "late_barack" and "Added **late_barack" in added and files.value is None
    assert "no longer on the server" in added and photo == gr.skip()


def test_the_comparison_handle_starts_left_of_the_repainted_faces() -> None:
    """In the middle, a face on the left half sat on the "before" side: a result looked like no change."""
    from faceswap_core.ui.swap_result import result_handle

    def photo(left: float) -> SimpleNamespace:
        face = SimpleNamespace(box=(left, 100.0, left + 200.0, 300.0))
        return SimpleNamespace(faces=[face], size=(1000, 600), last=("b", "a", "p", {"faces": [{"face": 0}]}))

    assert result_handle(photo(200.0)).slider_position == pytest.approx(17.0)  # just left of the face
    assert result_handle(photo(700.0)).slider_position == 50  # already on the "after" side
    assert result_handle(photo(10.0)).slider_position == 5  # never out of reach at the edge
    assert result_handle(None).slider_position == 50
