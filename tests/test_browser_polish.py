"""The demo as a newcomer meets it (issue 21), the polish items, in Debian's Chromium on the tiny model: every
tab in sight on a phone, no empty box under a few aligned crops, no upload box beside a saved person's photos.

Each test leaves screenshots at 1366x768 and 390x844 in test-artifacts/ (named ``polish-*``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import REPO, running_app
from browser_driver import CHROMIUM, DESKTOP, PHONE, chromium, open_app, pick, two_photos, wait_for_text
from PIL import Image

ARTIFACTS = REPO / "test-artifacts"
TABS = ("Swap a face", "Train a person", "Swap in a video")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh install (an empty people folder) with photos of people usable without training. Yields the URL."""
    from faceswap_core.identity_adapter import save_tiny_ip_adapter

    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("polish-ip-adapter"))
    ARTIFACTS.mkdir(exist_ok=True)
    people = tmp_path_factory.mktemp("polish-people")
    with running_app(tiny_model_dir, people, ARTIFACTS / "polish-app.log", adapter) as url:
        yield url


@pytest.fixture(scope="module")
def browser(app: str) -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, app: str) -> Iterator[Any]:
    """A new page at 1366x768, once the model is ready."""
    opened = open_app(browser, app, DESKTOP)
    wait_for_text(opened, "#model-status", "Model ready")
    yield opened
    opened.context.close()


@pytest.fixture
def photos(astronaut: Image.Image, tmp_path: Path) -> list[str]:
    return two_photos(astronaut, tmp_path, "person")


def shots(page: Any, name: str, selector: str | None = None) -> None:
    """What the screen shows at 1366x768 and at 390x844, ``selector`` scrolled into view (left at 1366x768)."""
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        time.sleep(0.5)  # the layout settles
        if selector:
            page.locator(selector).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"polish-{name}-{viewport['width']}x{viewport['height']}.png"))
    page.set_viewport_size(DESKTOP)


def test_every_tab_is_in_sight_on_a_phone(page: Any) -> None:
    """At 390x844 the three tabs sit in the tab bar, none behind a "..." menu, and each opens with one tap."""
    shots(page, "tabs")
    page.set_viewport_size(PHONE)
    time.sleep(0.5)  # Gradio moves the tabs that do not fit into its menu after a resize
    assert not page.locator("#pages .overflow-menu").first.is_visible()
    for name in TABS:
        tab = page.get_by_role("tab", name=name, exact=True)
        where = tab.bounding_box(timeout=5_000)
        assert tab.is_visible() and where is not None, f"the {name!r} tab is hidden"
        assert where["x"] >= 0 and where["x"] + where["width"] <= PHONE["width"], f"the {name!r} tab is cut off"
        tab.click()
        assert tab.get_attribute("aria-selected") == "true"


def test_crops_fit_their_gallery_and_a_saved_person_has_no_upload_box(page: Any, photos: list[str]) -> None:
    """Two aligned crops: the gallery ends under them, not 300 px lower. A person added from photos, picked in
    the Train tab: their photos are the crops, with no large empty upload box beside them."""
    page.get_by_role("tab", name="Train a person").click()
    page.locator("#train-photos input[type=file]").first.set_input_files(photos)
    wait_for_text(page, "#prepare-note", "2 photo(s) ready")
    page.locator("#crops img").first.wait_for(state="visible")
    shots(page, "crops", "#crops")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        time.sleep(0.5)
        gap = page.evaluate(
            "() => { const gallery = document.querySelector('#crops').getBoundingClientRect();"
            " const under = Array.from(document.querySelectorAll('#crops .thumbnail-item'))"
            "   .map(item => item.getBoundingClientRect().bottom);"
            " return gallery.bottom - Math.max(...under); }"
        )
        assert gap < 40, f"{gap:.0f} px of empty gallery under the crops at {viewport}"
    page.set_viewport_size(DESKTOP)

    page.get_by_role("tab", name="Swap a face").click()
    page.locator("#person-photo-files input[type=file]").first.set_input_files(photos)
    page.fill("#new-person-name textarea, #new-person-name input", "saved")
    page.click("#add-person")
    wait_for_text(page, "#add-person-note", "Added saved (2 photos)")
    page.get_by_role("tab", name="Train a person").click()
    pick(page, "#train-person", "saved (2 photos)")
    wait_for_text(page, "#prepare-note", "saved: 2 photo(s)")
    page.locator("#train-photos").wait_for(state="hidden")
    shots(page, "saved-person", "#train-person")
    pick(page, "#train-person", "A new person, from the photos here")
    page.locator("#train-photos").wait_for(state="visible")  # a new person: upload again
