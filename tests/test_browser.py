"""A real browser (Debian's chromium via playwright) drives ``app.py`` on the tiny model.

Upload a target, Auto mask, paint a stroke, Generate, download the full-size PNG; then train two steps
in the Train tab and find the new LoRA in the Swap tab's picker. A failing test leaves a screenshot
in test-artifacts/. Skipped when /usr/bin/chromium is not installed (CI installs it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from app_server import REPO, running_app
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lora_dir = tmp_path_factory.mktemp("browser-loras")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tiny_model_dir, lora_dir, ARTIFACTS / "browser-app.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(server)
        tab.wait_for_selector("#target")
        try:
            yield tab
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: Any, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def wait_for_text(page: Any, selector: str, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=timeout_ms,
    )


def wait_idle(page: Any, selector: str) -> None:
    """Until the component's progress timer ("1.2s", "queue: 1/1") has been gone for a second."""
    busy = "sel => /queue|\\d\\.\\ds/.test(document.querySelector(sel)?.innerText || '')"
    time.sleep(0.5)
    quiet_since = None
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if page.evaluate(busy, selector):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{selector} stayed busy")


def upload(page: Any, path: Path, note: str = "is masked") -> None:
    """Upload a photo with the Upload button and wait until its faces are numbered and masked."""
    wait_for_text(page, "#model-status", "Model ready")
    with page.expect_file_chooser() as chooser:
        page.click("#upload")
    chooser.value.set_files(str(path))
    wait_for_text(page, "#mask-note", note, timeout_ms=60_000)
    wait_idle(page, "#target")


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


def pick(page: Any, selector: str, option: str) -> None:
    """Choose ``option`` in a Gradio dropdown as a person would: open it, click the entry."""
    page.locator(f"{selector} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def image_point(page: Any, size: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y): the editor shows the photo centred, at its zoom ("98%")."""
    box = page.locator("#target canvas").first.bounding_box()
    zoom = re.search(r"(\d+)%", page.locator("#target").inner_text())
    scale = int(zoom.group(1)) / 100 if zoom else 1.0
    centre_x, centre_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return centre_x + (x - size[0] / 2) * scale, centre_y + (y - size[1] / 2) * scale


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
        page.click("#generate")
        page.wait_for_function(
            "() => { const imgs = document.querySelectorAll('#result img');"
            " return imgs.length >= 2 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0); }",
            timeout=TIMEOUT_MS,
        )
        sizes = page.evaluate(
            "Array.from(document.querySelectorAll('#result img')).map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert all(tuple(size) == astronaut.size for size in sizes)
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
        pick(page, "#lora", "No person (base model only)")
        wait_for_text(page, "#face-summary", "2: **base model**".replace("**", ""))
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
    photos = []
    for index, angle in enumerate((0, 6)):
        path = tmp_path / f"face{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    with screenshot_on_failure(page, "add-person"):
        page.get_by_role("tab", name="Swap a face").click()
        assert page.locator("#likeness input[type=number]").is_disabled()  # no photos yet: nothing to take
        page.get_by_text("Photos of the person (optional)").click()
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
    photos = []
    for index, angle in enumerate((0, 6)):
        path = tmp_path / f"person{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    with screenshot_on_failure(page, "train"):
        page.get_by_role("tab", name="Train a person").click()
        page.click("#train")  # no photos yet: refused, and said so in the status line, not on the chart
        wait_for_text(page, "#train-status", "Error")
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
        page.screenshot(path=str(ARTIFACTS / "train-done.png"), full_page=True)
        page.get_by_role("tab", name="Swap a face").click()
        picker = page.locator("#lora input")
        assert picker.input_value().startswith("browser_person (LoRA")
        picker.click()
        wait_for_text(page, "body", "browser_person/checkpoint-1")  # the open list shows the checkpoints too
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
