"""A real browser (Debian's chromium via playwright) drives ``app.py`` on the tiny model.

Upload a target, Auto mask, paint a stroke, Generate, download the full-size PNG; then train two steps
in the Train tab and find the new LoRA in the Swap tab's picker. A failing test leaves a screenshot
in test-artifacts/. Skipped when /usr/bin/chromium is not installed (CI installs it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from app_server import REPO, running_app
from browser_driver import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    RESULT_SHOWN,
    TIMEOUT_MS,
    big_photo,
    choose_photo,
    chromium,
    generate,
    image_point,
    open_app,
    pick,
    two_photos,
    upload,
    wait_for_text,
    wait_idle,
    wait_mask_painted,
)
from PIL import Image

from faceswap_core.face_choice import NO_PERSON

ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


def open_person_section(page: Any) -> None:
    """Open "Photos of the person" unless it is open (it starts open while there is nobody to pick)."""
    if not page.locator("#person-photo-files").is_visible():
        page.locator("#person-photos .label-wrap").click()
    page.locator("#person-photo-files").wait_for(state="visible")


def wait_result_images(page: Any) -> None:
    """The before/after slider's images load after the download button shows: wait until both have."""
    page.wait_for_function(
        "() => { const i = Array.from(document.querySelectorAll('#result img'));"
        " return i.length && i.every(e => e.complete && e.naturalWidth > 0); }"
    )


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-loras")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, lora_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from faceswap_core.identity_adapter import save_tiny_ip_adapter

    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("browser-ip-adapter"))  # photos of a person work
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tiny_model_dir, lora_dir, ARTIFACTS / "browser-app.log", adapter) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def page(browser: Any, server: str) -> Any:
    return open_app(browser, server, {"width": 1400, "height": 1000}, accept_downloads=True)


@contextmanager
def screenshot_on_failure(page: Any, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def set_number(page: Any, selector: str, value: str) -> None:
    """Type a slider's number as a person would, and make sure it took (an input re-rendered while an
    accordion opens can drop a value typed into it)."""
    number = page.locator(f"{selector} input[type=number]")
    for _ in range(5):
        number.wait_for(state="visible")
        number.fill(value)
        number.press("Enter")
        time.sleep(0.5)
        if number.input_value() == value:
            return
    raise AssertionError(f"{selector} kept {number.input_value()!r} instead of {value!r}")


def test_upload_auto_mask_paint_generate_and_download(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    target = tmp_path / "astronaut.png"
    astronaut.save(target)
    with screenshot_on_failure(page, "swap"):
        upload(page, target)
        page.get_by_role("button", name="Brush", exact=True).click()
        # a stroke near the bottom of the photo, far below the face: it must become part of the mask
        start = image_point(page, astronaut.size, 300, 490)
        page.mouse.move(*start)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(start[0] + step * 8, start[1], steps=2)
        page.mouse.up()
        wait_idle(page, "#target")
        generate(page)
        wait_result_images(page)
        sizes = page.evaluate(
            "Array.from(document.querySelectorAll('#result img')).map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert sizes and all(tuple(size) == astronaut.size for size in sizes)
        with page.expect_download() as download_info:
            page.click("#download")
        saved = tmp_path / "result.png"
        download_info.value.save_as(saved)
        with Image.open(saved) as result:
            assert result.size == astronaut.size
            record = json.loads(result.text["parameters"])
        assert record["faces"][0]["mask"] == "given" and record["faces"][0]["face"] == 0
        assert record["faces"][0]["crop_box"][3] >= 480  # the painted stroke, not only the face, was masked
        page.screenshot(path=str(ARTIFACTS / "swap-result.png"), full_page=True)


def test_a_hand_over_the_face_is_cut_out_of_the_mask_before_generate(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    """The editor's automatic mask leaves a photographed hand out, and Generate then returns it exactly."""
    import numpy as np

    from bench.occluders import composite
    from faceswap_core.faces import detect_faces
    from faceswap_core.faces.masks import face_mask

    scene, alpha = composite(astronaut, "real hand", detect_faces(astronaut)[0])
    target = tmp_path / "hand.png"
    scene.save(target)
    hand = (alpha >= 128) & (np.asarray(face_mask(scene.size, detect_faces(scene)[0])) >= 128)
    with screenshot_on_failure(page, "occlusion"):
        page.get_by_role("tab", name="Swap a face").click()
        page.get_by_role("tab", name="Photo and mask").click()
        upload(page, target)
        page.screenshot(path=str(ARTIFACTS / "swap-occlusion-mask.png"), full_page=True)
        generate(page)
        with page.expect_download() as download_info:
            page.click("#download")
        saved = tmp_path / "hand-result.png"
        download_info.value.save_as(saved)
        before = np.asarray(scene).astype(int)
        after = np.asarray(Image.open(saved).convert("RGB")).astype(int)
        same = np.abs(after - before).max(axis=2) == 0
        assert hand.sum() > 500 and same[hand].mean() > 0.7  # the hand comes back as it was
        face = (alpha == 0) & (np.asarray(face_mask(scene.size, detect_faces(scene)[0])) >= 250)
        assert (~same[face]).mean() > 0.9  # while the face beside it was repainted


def test_group_photo_second_face_gets_its_own_person(page: Any, tmp_path: Path) -> None:
    """Choosing face 2 in the Face picker and a person for it paints face 2, and face 2 is what gets replaced."""
    group = REPO.parent / "shared" / "data" / "people" / "two_people.jpg"
    if not group.is_file():
        pytest.skip("shared photos of two people not present")
    with screenshot_on_failure(page, "group"):
        page.get_by_role("tab", name="Swap a face").click()
        page.get_by_role("tab", name="Photo and mask").click()
        upload(page, group, note="2 faces found")
        pick(page, "#face-index", "Face 2")
        wait_for_text(page, "#lora", "Person for face 2")
        pick(page, "#lora", NO_PERSON)
        wait_for_text(page, "#face-summary", "2: a new face")
        pick(page, "#face-index", "Face 1 (largest)")
        pick(page, "#lora", "Keep this face (no change)")
        wait_for_text(page, "#face-summary", "1: kept")
        wait_idle(page, "#target")
        page.click("#generate")
        page.locator("#download").wait_for(state="visible", timeout=TIMEOUT_MS)
        page.wait_for_function("() => document.querySelector('#download')?.innerText.includes('1126')")
        with page.expect_download() as download_info:
            page.click("#download")
        saved = tmp_path / "group.png"
        download_info.value.save_as(saved)
        with Image.open(saved) as result:
            record = json.loads(result.text["parameters"])
        assert [(face["face"], face["mask"]) for face in record["faces"]] == [(1, "given")]
        page.screenshot(path=str(ARTIFACTS / "swap-group.png"), full_page=True)


def test_add_a_person_from_photos_and_find_them_in_the_picker(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    photos = two_photos(astronaut, tmp_path, "face")
    with screenshot_on_failure(page, "add-person"):
        page.get_by_role("tab", name="Swap a face").click()
        assert page.locator("#likeness input[type=number]").is_disabled()  # no photos yet: nothing to take
        open_person_section(page)
        page.locator("#person-photo-files input[type=file]").first.set_input_files(photos)
        page.fill("#new-person-name textarea, #new-person-name input", "astro")
        page.click("#add-person")
        wait_for_text(page, "#add-person-note", "Added astro (2 photos)")
        page.wait_for_function("() => document.querySelector('#lora input')?.value === 'astro (2 photos)'")
        time.sleep(1.0)  # whatever else the add set off has settled
        assert page.locator("#likeness input[type=number]").is_enabled()
        assert page.locator("#likeness input[type=number]").input_value() == "0.7"
        page.screenshot(path=str(ARTIFACTS / "add-person.png"), full_page=True)


def test_train_two_steps_and_pick_the_new_lora(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    photos = two_photos(astronaut, tmp_path, "person")
    with screenshot_on_failure(page, "train"):
        page.get_by_role("tab", name="Train a person").click()
        page.click("#train")  # no photos yet: refused, and said so in the status line, not on the chart
        wait_for_text(page, "#train-status", "Upload photos of the person first")
        assert "Error" not in page.locator("#loss").inner_text()
        page.locator("#train-photos input[type=file]").first.set_input_files(photos)
        wait_for_text(page, "#prepare-note", "2 photo(s) ready")
        page.fill("#lora-name textarea, #lora-name input", "browser_person")
        page.get_by_text("Advanced").last.click()
        for selector, value in (("#train-steps", "2"), ("#checkpoint-every", "1"), ("#train-resolution", "64")):
            set_number(page, selector, value)
        page.click("#train")
        wait_for_text(page, "#train-status", "is ready")
        wait_for_text(page, "#loss", "smoothed")  # the chart's legend: raw and smoothed lines
        wait_for_text(page, "#rank-note", "so no save is picked for you")  # ranked after training: noise, no face
        page.screenshot(path=str(ARTIFACTS / "train-done.png"), full_page=True)
        page.get_by_role("tab", name="Swap a face").click()
        picker = page.locator("#lora input")
        assert picker.input_value().startswith("browser_person (trained")
        picker.click()
        wait_for_text(page, "body", "browser_person, save at step 1")  # the open list shows the saves too
        page.keyboard.press("Escape")
        # Cancel says at once that it is stopping (the last step and its checkpoint come first), then how it ended
        page.get_by_role("tab", name="Train a person").click()
        page.fill("#lora-name textarea, #lora-name input", "browser_cancel")
        set_number(page, "#train-steps", "400")
        set_number(page, "#checkpoint-every", "200")
        page.click("#train")
        wait_for_text(page, "#train-status", "Training")
        page.click("#cancel-train")
        wait_for_text(page, "#train-status", "Stopping", timeout_ms=3_000)
        wait_for_text(page, "#train-status", "Cancelled after")


def test_ranked_checkpoints_the_recommended_one_is_selected_in_the_swap_tab(
    page: Any, tiny_model_dir: Path, lora_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    """A person ranked on real faces (checkpoint 10 drew none, 20 the astronaut): Rank shows the scores and
    selects checkpoint 20 in the Swap tab, marked as recommended."""
    from faceswap_core.engine import Engine
    from faceswap_core.settings import ModelSpec, TrainSettings
    from faceswap_core.training import train_lora
    from faceswap_core.training.ranking import rank_checkpoints

    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.crop((110, 0, 350, 240)).resize((160, 160)).save(photos / "a.png")
    (photos / "metadata.csv").write_text('file_name,text\na.png,"a photo of a woman face"\n')
    quick = TrainSettings(steps=2, rank=4, resolution=64, checkpoint_every=1, sample_every_checkpoint=False)
    train_lora(photos, "ranked", base_model=str(tiny_model_dir), settings=quick, lora_dir=lora_dir)
    engine = Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=lora_dir)
    blank = Image.new("RGB", (64, 64), (128, 128, 128))
    drawn = {"ranked/checkpoint-1": blank, "ranked/checkpoint-2": astronaut}
    render = lambda loras, prompts, *_: [drawn[lora] for lora in loras for _ in prompts]  # noqa: E731
    assert rank_checkpoints(engine, "ranked", render=render).recommended == "ranked/checkpoint-2"
    with screenshot_on_failure(page, "rank"):
        page.get_by_role("tab", name="Train a person").click()
        page.fill("#lora-name textarea, #lora-name input", "ranked")
        page.click("#rank-checkpoints")
        wait_for_text(page, "#rank-note", "as saved at step 2 looks most like the photos")
        page.get_by_role("tab", name="Swap a face").click()
        picker = page.locator("#lora input")
        assert picker.input_value().startswith("ranked, save at step 2") and "recommended" in picker.input_value()


def shot(page: Any, name: str) -> None:
    """A screenshot of what the screen shows (not the whole page), kept in test-artifacts/."""
    size = page.viewport_size
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"))


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not on the page"
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def in_view(page: Any, selector: str) -> bool:
    where, size = box(page, selector), page.viewport_size
    return where["y"] >= 0 and where["y"] + where["height"] <= size["height"] + 1


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366x768", "390x844"])
def test_photo_tools_and_result_fit_the_screen(
    browser: Any, server: str, astronaut: Image.Image, tmp_path: Path, viewport: dict[str, int]
) -> None:
    """Laptop: photo, mask, person and Generate on the first screen. Phone: nothing cut or covered.
    Both: the result is in view after Generate."""
    target = tmp_path / "astronaut.jpg"
    astronaut.save(target)
    page = open_app(browser, server, viewport)
    with screenshot_on_failure(page, f"layout-{viewport['width']}"):
        wait_for_text(page, "#model-status", "Model ready")
        assert not page.locator("#target .zoom-number").is_visible()  # no "1000%" over an empty canvas
        shot(page, "layout-empty")
        upload(page, target)
        shot(page, "layout-loaded")
        tools, zoom = box(page, "#target .toolbar-wrap"), box(page, "#target .top-panel")
        photo_left, photo_top = image_point(page, astronaut.size, 0, 0)
        assert tools["x"] + tools["width"] <= photo_left  # the brush bar beside the photo, not over it
        assert zoom["y"] + zoom["height"] <= photo_top  # and the zoom bar above it
        for label in page.locator("#target label, #result label").all():
            if label.is_visible():
                assert not overlap(label.bounding_box(), zoom), "a label sits under the zoom bar"
        clipped = page.evaluate(
            "() => { const i = document.querySelector('#face-index input'); return i.scrollWidth > i.clientWidth + 1; }"
        )
        assert not clipped and page.locator("#face-index input").input_value() == "Face 1 (largest)"
        if viewport == DESKTOP:
            if page.locator("#person-photo-files").is_visible():  # nobody to pick yet: the add section is open
                page.locator("#person-photos .label-wrap").click()  # (test_browser_newcomer covers that screen)
            assert page.evaluate("window.scrollY") == 0
            for selector in ("#upload", "#target canvas", "#lora", "#generate"):
                assert in_view(page, selector), f"{selector} is below the fold at 1366x768"
        generate(page)
        page.wait_for_function(
            "() => { const r = document.querySelector('#result').getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight + 1; }"
        )
        shot(page, "layout-result")
    page.context.close()


def test_a_24_megapixel_photo_from_upload_to_result(page: Any, tmp_path: Path) -> None:
    """A phone's 24 MP JPEG: numbered and masked on a display copy, swapped and downloadable full size."""
    photo = big_photo(tmp_path / "phone.jpg")
    with screenshot_on_failure(page, "big-photo"):
        page.get_by_role("tab", name="Swap a face").click()
        since = choose_photo(page, photo)
        wait_mask_painted(page, since, "1 face found")
        wait_idle(page, "#target")
        assert page.locator("#target canvas").first.is_visible()
        shot(page, "big-photo-loaded")
        generate(page)
        wait_for_text(page, "#download", "6000×4000")
        wait_result_images(page)
        sizes = page.evaluate("Array.from(document.querySelectorAll('#result img')).map(i => i.naturalWidth)")
        assert sizes and all(width == 2048 for width in sizes)  # the comparison is display size, not 24 MP
        shot(page, "big-photo-result")


def test_a_file_that_is_not_a_photo_and_a_photo_without_a_face(page: Any, tmp_path: Path) -> None:
    from skimage import data

    renamed = tmp_path / "notes.png"
    renamed.write_text("a shopping list, not a photo")
    no_face = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(no_face)
    with screenshot_on_failure(page, "messages"):
        page.get_by_role("tab", name="Swap a face").click()
        choose_photo(page, renamed)
        wait_for_text(page, "body", "not an image")
        shot(page, "message-not-a-photo")
        for close in page.locator(".toast-close").all():
            close.click()
        since = choose_photo(page, no_face)
        wait_mask_painted(page, since, "No face found: paint over the area to replace with the brush")
        shot(page, "message-no-face")


def test_try_strengths_shows_candidates_with_strength_and_likeness(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    portrait = tmp_path / "portrait.png"
    astronaut.crop((100, 0, 400, 512)).save(portrait)
    with screenshot_on_failure(page, "strengths"):
        page.get_by_role("tab", name="Swap a face").click()
        upload(page, portrait)
        panel = page.locator("#strengths-panel")
        panel.get_by_text("Try strengths: what to try").click()
        page.fill("#strengths textarea, #strengths input", "0.3, 0.6")
        open_person_section(page)
        page.locator("#person-photo-files input[type=file]").set_input_files(str(portrait))
        wait_for_text(page, "#person-photo-files", "portrait.png")
        page.click("#try-strengths")
        page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
        page.locator("#candidates img").nth(1).wait_for(state="visible")
        captions = page.locator("#candidates .caption-label").all_inner_texts()
        assert len(captions) == 2 and all("strength" in c and "likeness" in c for c in captions), captions
        assert {c.split("·")[0].strip() for c in captions} == {"strength 0.30", "strength 0.60"}
        # the caption under the face, not over its chin (once the thumbnails' images have loaded and laid out)
        page.wait_for_function(
            "() => { const i = document.querySelector('#candidates img'),"
            " c = document.querySelector('#candidates .caption-label');"
            " return i && c && i.complete && c.getBoundingClientRect().top >= i.getBoundingClientRect().bottom - 1; }",
            timeout=10_000,
        )
        wait_for_text(page, "#candidates", "most alike first")
        shot(page, "try-strengths")
        page.set_viewport_size(PHONE)  # the heading wraps on a phone: above the first thumbnail, not over it
        time.sleep(0.5)
        heading = page.locator('#candidates > label[data-testid="block-label"]').bounding_box()
        first = page.locator("#candidates img").first.bounding_box()
        assert heading["y"] + heading["height"] <= first["y"] + 1, (heading, first)
        shot(page, "try-strengths")
        page.set_viewport_size(DESKTOP)
