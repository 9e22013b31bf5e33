"""The demo as a newcomer meets it (issue 21), in Debian's Chromium on the tiny model: a fresh install with
nobody to pick, progress and Stop while Generate runs, the before/after view on a portrait, uploads kept
in the Train tab, a warning before leaving, and messages that name their field.

Each test leaves screenshots at 1366x768 and 390x844 in test-artifacts/ (named ``newcomer-*``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    choose_photo,
    chromium,
    generate,
    open_app,
    two_photos,
    upload,
    wait_for_text,
    wait_idle,
)
from PIL import Image

ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A fresh install: an empty people folder. Yields the URL and the server log."""
    from faceswap_core.identity_adapter import save_tiny_ip_adapter

    lora_dir = tmp_path_factory.mktemp("newcomer-people")
    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("newcomer-ip-adapter"))
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "newcomer-app.log"
    with running_app(tiny_model_dir, lora_dir, log, adapter) as url:
        yield url, log


@pytest.fixture(scope="module")
def browser(app: tuple[str, Path]) -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, app: tuple[str, Path]) -> Iterator[Any]:
    """A new page at 1366x768, once the model is ready."""
    opened = open_app(browser, app[0], DESKTOP)
    wait_for_text(opened, "#model-status", "Model ready")
    yield opened
    opened.context.close()


def shots(page: Any, name: str) -> None:
    """What the screen shows at 1366x768 and at 390x844 (the page is left at 1366x768)."""
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        time.sleep(0.5)  # the layout settles
        page.screenshot(path=str(ARTIFACTS / f"newcomer-{name}-{viewport['width']}x{viewport['height']}.png"))
    page.set_viewport_size(DESKTOP)


def close_messages(page: Any) -> None:
    """Close the pop-ups as a person would (their close buttons), without waiting for them to fade."""
    page.evaluate("() => document.querySelectorAll('.toast-close').forEach(button => button.click())")


def in_view(page: Any, selector: str) -> bool:
    where = page.locator(selector).first.bounding_box()
    return where is not None and where["y"] >= 0 and where["y"] + where["height"] <= page.viewport_size["height"] + 1


def portrait(folder: Path, astronaut: Image.Image) -> Path:
    path = folder / "portrait.png"
    astronaut.crop((100, 0, 400, 512)).save(path)
    return path


def test_fresh_install_leads_from_nothing_to_a_first_result(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    """Nobody to pick: the section to add a person is open and says so; Example is one click away; after
    adding, the section closes and Generate is on the first screen; Generate gives a result."""
    section = page.locator("#person-photos")
    assert "Nobody to pick yet" in section.inner_text()
    assert page.locator("#person-photo-files").is_visible()  # open, without hunting for it
    assert in_view(page, "#example-photo")
    shots(page, "fresh")
    page.click("#example-photo")
    wait_for_text(page, "#mask-note", "face 1 is masked")
    wait_idle(page, "#target")
    assert not page.locator("#example-photo").is_visible()  # its place goes to the face picker
    photos = two_photos(astronaut, tmp_path, "face")
    page.locator("#person-photo-files input[type=file]").first.set_input_files(photos)
    page.fill("#new-person-name textarea, #new-person-name input", "eileen")
    page.click("#add-person")
    page.wait_for_function("() => document.querySelector('#lora input')?.value === 'eileen (2 photos)'")
    page.locator("#person-photo-files").wait_for(state="hidden")  # the section closed
    assert in_view(page, "#generate"), "Generate is below the fold after adding a person"
    shots(page, "person-added")
    page.click("#generate")
    page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
    page.locator("#download").wait_for(state="visible")
    shots(page, "first-result")
    choose_photo(page, tmp_path / "face1.jpg")  # another photo: the last one's result goes with it
    wait_for_text(page, "#mask-note", "is masked")
    page.locator("#download").wait_for(state="hidden")
    assert page.locator("#result img").count() == 0
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo")
    choose_photo(page, fake)
    wait_for_text(page, "body", "not an image file")  # said on the page, not only in the server's log


def test_generate_shows_progress_where_the_result_appears_and_stops(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    """At once: the result view, Stop instead of Generate, progress in steps over the result. Stop ends it
    and brings Generate back; a double click runs one request."""
    upload(page, portrait(tmp_path, astronaut))
    page.get_by_text("Advanced", exact=True).click()
    page.locator("#steps input[type=number]").fill("150")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#generate")
    page.locator("#stop").wait_for(state="visible", timeout=5_000)
    assert not page.locator("#generate").is_visible() and not page.locator("#try-strengths").is_visible()
    page.wait_for_function(
        "() => document.querySelector('#views button[role=tab][aria-selected=true]')?.innerText.includes('Result')",
        timeout=5_000,
    )
    wait_for_text(page, "#progress-line", "Starting")  # at once, before the model has done a step
    wait_for_text(page, "#progress-line", "s left", timeout_ms=90_000)  # "Generating, step 9 of 75, about 6 s left"
    shots(page, "progress")
    page.click("#stop")
    page.locator("#generate").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#stop").is_visible()
    time.sleep(1)  # whatever the cancelled request still sends
    wait_for_text(page, "#progress-line", "Stopped", timeout_ms=3_000)  # said where the result would be
    page.locator("#steps input[type=number]").fill("4")
    page.locator("#steps input[type=number]").press("Enter")
    time.sleep(0.5)
    page.dblclick("#generate")
    page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
    page.locator("#generate").wait_for(state="visible")
    first = page.locator("#download").get_attribute("href") or page.locator("#download").inner_text()
    time.sleep(3)  # a second, queued run would replace the result (and show Stop again) by now
    assert not page.locator("#stop").is_visible()
    assert (page.locator("#download").get_attribute("href") or page.locator("#download").inner_text()) == first


WATCH_STATUS = """() => { window.statusTexts = [];
  new MutationObserver(() => document.querySelectorAll('[role=status]').forEach(element => {
    const text = element.textContent.trim();
    if (text && !window.statusTexts.includes(text)) window.statusTexts.push(text);
  })).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def test_one_generate_uploads_the_photo_a_few_times_and_keeps_its_progress_in_view(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    """Scrolled down to the settings at 1366x768, Generate brings its progress line into view; the photo
    and mask go up a bounded number of times, not with each progress message (235 times were counted);
    and no Gradio message key ("common.complete") is shown or read out instead of words."""
    upload(page, portrait(tmp_path, astronaut))
    page.get_by_text("Advanced", exact=True).click()
    page.locator("#steps input[type=number]").fill("60")
    page.locator("#steps input[type=number]").press("Enter")
    time.sleep(0.5)
    page.evaluate("() => document.querySelector('#generate').scrollIntoView({block: 'start'})")
    time.sleep(0.5)
    assert not in_view(page, "#views"), "the test starts with the photo above the screen"
    page.evaluate(WATCH_STATUS)
    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.url) if "/gradio_api/upload" in request.url else None)
    page.click("#generate")
    wait_for_text(page, "#progress-line", "s left", timeout_ms=90_000)
    assert in_view(page, "#progress-line") and in_view(page, "#stop")
    shots(page, "progress-scrolled")
    page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
    page.locator("#generate").wait_for(state="visible")
    time.sleep(2)  # what the page still sends after the result
    # 231 before (one or two per progress message); 24 now, most of them right after the result, whatever the steps
    assert len(uploads) <= 30, f"{len(uploads)} uploads during one Generate"
    texts = page.evaluate("() => window.statusTexts")
    assert not [text for text in texts if "common." in text], texts
    assert "common." not in page.evaluate("() => document.body.innerText")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366x768", "390x844"])
def test_before_and_after_line_up_on_a_portrait_photo(
    browser: Any, app: tuple[str, Path], astronaut: Image.Image, tmp_path: Path, viewport: dict[str, int]
) -> None:
    page = open_app(browser, app[0], viewport)
    try:
        wait_for_text(page, "#model-status", "Model ready")
        upload(page, portrait(tmp_path, astronaut))
        page.click("#generate")
        page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
        page.locator("#generate").wait_for(state="visible")
        time.sleep(1.5)  # the result is scrolled into view smoothly: measure once it stands still
        frame, *images = page.evaluate(
            "() => [document.querySelector('#result'), ...document.querySelectorAll('#result img')].map(e =>"
            " { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })"
        )
        assert len(images) == 2
        before, after = images
        assert all(abs(before[key] - after[key]) < 1 for key in ("x", "y", "width", "height")), images
        # the whole photo inside the box: nothing cut at the top or the bottom
        assert before["y"] >= frame["y"] - 1 and before["y"] + before["height"] <= frame["y"] + frame["height"] + 1
        page.screenshot(path=str(ARTIFACTS / f"newcomer-before-after-{viewport['width']}x{viewport['height']}.png"))
    finally:
        page.context.close()


def test_train_tab_keeps_uploads_when_the_person_picker_is_opened(
    page: Any, astronaut: Image.Image, tmp_path: Path
) -> None:
    photos = []
    for index, angle in enumerate((0, 5, -5)):
        path = tmp_path / f"train{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    page.get_by_role("tab", name="Train a person").click()
    page.locator("#train-photos input[type=file]").first.set_input_files(photos)
    wait_for_text(page, "#prepare-note", "3 photo(s) ready")
    page.fill("#lora-name textarea, #lora-name input", "maria")
    page.locator("#train-person input").click()  # open the Person list ...
    time.sleep(0.5)
    page.locator("#caption-advice").click()  # ... and click elsewhere
    time.sleep(1.5)
    assert "3 photo(s) ready" in page.locator("#prepare-note").inner_text()
    assert page.locator("#crops img").count() == 3
    assert page.locator("#lora-name textarea, #lora-name input").first.input_value() == "maria"
    assert page.locator("#train-photos").inner_text().count(".jpg") == 3
    shots(page, "train-kept")


def test_leaving_with_work_on_screen_asks_first(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    """Back, Forward, reload or close ask first once a photo is on screen (not on an empty page)."""
    leaving = (
        "() => { const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e);"
        " return e.defaultPrevented; }"
    )
    assert page.evaluate(leaving) is False  # nothing to lose yet: leave without a question
    upload(page, portrait(tmp_path, astronaut))
    assert page.evaluate(leaving) is True
    shots(page, "leave")


def test_messages_name_their_field_and_leave_no_error_badge(
    page: Any, app: tuple[str, Path], astronaut: Image.Image, tmp_path: Path
) -> None:
    upload(page, portrait(tmp_path, astronaut))
    page.get_by_text("Advanced", exact=True).click()
    seed = page.locator("#seed input")
    seed.fill("1e23")
    seed.press("Enter")
    page.click("#generate")
    wait_for_text(page, "body", "seed must be at most 4294967295, got 1e+23")
    shots(page, "message-seed")
    page.locator("#generate").wait_for(state="visible")
    close_messages(page)
    time.sleep(1)
    badges = page.locator("[data-testid='status-tracker'] .error")
    assert not any(badge.is_visible() for badge in badges.all()), "a bare 'Error' badge is left on the page"
    log = app[1].read_text()
    assert log.count("seed must be at most 4294967295, got 1e+23") == 1 and "Traceback" not in log
    page.get_by_role("tab", name="Train a person").click()
    page.click("#train")  # no photos yet
    wait_for_text(page, "#train-status", "Upload photos of the person first")
    close_messages(page)
    time.sleep(1)
    assert "Error" not in page.locator("#train-status").inner_text()
    shots(page, "message-train")


def test_a_reload_brings_back_the_photo_choices_and_result(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    """Photo, strength and result come back after a reload, from the server (the browser keeps a ticket only)."""
    upload(page, portrait(tmp_path, astronaut))
    time.sleep(1)  # the kept value is written: it must not bring anything "back" on this page
    assert "Back as you left it" not in page.locator("#mask-note").inner_text()
    strength = page.locator("#strength input[type=number]")
    strength.fill("0.66")
    strength.press("Enter")
    time.sleep(1)
    generate(page)
    page.locator("#generate").wait_for(state="visible")
    time.sleep(1)  # the kept value is written once the result is shown
    stored = page.evaluate("() => window.localStorage.getItem('faceswap-swap-tab')")
    assert stored and len(stored) < 1000  # a ticket and the controls (encrypted), no image
    page.reload()
    page.wait_for_selector("#target")
    wait_for_text(page, "#mask-note", "Back as you left it")
    page.wait_for_function(RESULT_SHOWN, timeout=TIMEOUT_MS)
    assert page.locator("#strength input[type=number]").input_value() == "0.66"
    assert page.locator("#download").is_visible()
    shots(page, "reloaded")
    page.get_by_role("tab", name="Photo and mask").click()
    page.wait_for_function("() => document.querySelector('#target canvas') !== null")
    assert "%" in page.locator("#target").inner_text()  # the photo is in the editor, at its zoom
    shots(page, "reloaded-photo")


def test_symbol_buttons_say_what_they_do_and_the_table_takes_no_files(page: Any) -> None:
    """The "↻" beside the person picker has words (tooltip and screen readers); the captions table shows no
    "Drop CSV or TSV files here to import data into dataframe"."""
    page.locator("#lora-refresh[aria-label]").wait_for(state="attached", timeout=10_000)
    refresh = page.locator("#lora-refresh")
    assert "Refresh the list of people" in refresh.get_attribute("aria-label")
    assert refresh.get_attribute("title") == refresh.get_attribute("aria-label")
    page.get_by_role("tab", name="Train a person").click()
    page.locator("#captions").wait_for(state="visible")
    assert "Drop CSV" not in page.locator("#captions").inner_text()
    assert "python -m" not in page.locator("body").inner_text()
    shots(page, "train-words")


def test_seven_crops_are_whole_with_their_names_under_them(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    """The Train tab's crops: the 7th (second row) is not cut off, and no file name covers a chin."""
    photos = []
    for index, angle in enumerate((0, 3, -3, 6, -6, 9, -9)):
        path = tmp_path / f"crop{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    page.get_by_role("tab", name="Train a person").click()
    page.locator("#train-photos input[type=file]").first.set_input_files(photos)
    wait_for_text(page, "#prepare-note", "7 photo(s) ready")
    page.wait_for_function("() => [...document.querySelectorAll('#crops img')].filter(i => i.complete).length == 7")
    time.sleep(0.5)
    boxes = "sel => [...document.querySelectorAll(sel)].map(e => e.getBoundingClientRect().toJSON())"
    gallery = page.evaluate(boxes, "#crops .grid-wrap")[0]  # what the gallery shows (it scrolls what is taller)
    crops = page.evaluate(boxes, "#crops .thumbnail-item img")
    captions = page.evaluate(boxes, "#crops .caption-label")
    assert len(crops) == len(captions) == 7
    heading = page.evaluate(boxes, '#crops > label[data-testid="block-label"]')[0]
    assert heading["bottom"] <= min(crop["top"] for crop in crops) + 1  # the heading over no crop
    for crop, caption in zip(crops, captions, strict=True):
        assert crop["bottom"] <= gallery["bottom"] + 1, (crop, gallery)  # whole, not cut at the bottom
        assert caption["top"] >= crop["bottom"] - 1, (caption, crop)  # under the crop, not over the chin
    page.set_viewport_size(PHONE)  # three to a row: all seven still there, each whole
    time.sleep(0.5)
    crops = page.evaluate(boxes, "#crops .thumbnail-item img")
    assert len({(round(crop["x"]), round(crop["y"])) for crop in crops}) == 7, crops  # none on top of another
    page.set_viewport_size(DESKTOP)
    page.locator("#crops").scroll_into_view_if_needed()
    shots(page, "train-crops")


def test_people_stay_after_a_reload_and_reach_the_video_tab(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    """A person added here is still this browser's after a reload (the section does not say "Nobody to pick"),
    and the Video tab's Person list, built before they existed, offers them when opened."""
    upload(page, portrait(tmp_path, astronaut))
    photos = []
    for index, angle in enumerate((0, -6)):
        path = tmp_path / f"gwen{index}.jpg"
        astronaut.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    assert "Nobody to pick" in page.locator("#person-photos").inner_text()  # a new browser: nobody of its own
    page.locator("#person-photo-files input[type=file]").first.set_input_files(photos)
    page.fill("#new-person-name textarea, #new-person-name input", "gwen")
    page.click("#add-person")
    page.wait_for_function("() => document.querySelector('#lora input')?.value === 'gwen (2 photos)'")
    page.reload()
    wait_for_text(page, "#model-status", "Model ready")
    wait_for_text(page, "#person-photos", "Photos of the person")
    assert "Nobody to pick" not in page.locator("#person-photos").inner_text()
    page.get_by_role("tab", name="Swap in a video").click()
    page.locator("#video-person input").click()
    page.get_by_role("option", name="gwen (2 photos)", exact=True).wait_for(timeout=10_000)
    shots(page, "video-people")
