"""The Train tab's Resume and Start over (issue 23, item 6) and its words (issue 21, item 8) in Debian's
Chromium on the tiny model.

A training stopped in the browser comes back after a reload: the person is picked, the offer is shown,
Resume finishes it and the new person is offered in the Swap tab. Start over asks first, removes what the
stopped training saved and trains again from the first step. Screenshots at 1366x768 go to test-artifacts/
(named ``train-resume-*`` and ``train-words-*``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import REPO, running_app
from browser_driver import CHROMIUM, DESKTOP, chromium, open_app, pick, two_photos, wait_for_text
from PIL import Image

ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app as it starts by default (each visitor has their own people); yields its URL and people folder."""
    lora_dir = tmp_path_factory.mktemp("resume-people")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tiny_model_dir, lora_dir, ARTIFACTS / "train-resume-app.log") as url:
        yield url, lora_dir


@pytest.fixture(scope="module")
def browser(app: tuple[str, Path]) -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, app: tuple[str, Path]) -> Iterator[Any]:
    """The Train tab at 1366x768, once the model is ready."""
    opened = open_app(browser, app[0], DESKTOP)
    wait_for_text(opened, "#model-status", "Model ready")
    opened.get_by_role("tab", name="Train a person").click()
    yield opened
    opened.context.close()


def shot(page: Any, name: str, selector: str) -> None:
    """What the 1366x768 screen shows with ``selector`` scrolled into view."""
    page.locator(selector).first.scroll_into_view_if_needed()
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / f"train-resume-{name}-1366x768.png"))


def set_number(page: Any, selector: str, value: str) -> None:
    """Type a slider's number and make sure it took (an input re-rendered meanwhile can drop it)."""
    number = page.locator(f"{selector} input[type=number]")
    for _ in range(5):
        number.fill(value)
        number.press("Enter")
        time.sleep(0.5)
        if number.input_value() == value:
            return
    raise AssertionError(f"{selector} kept {number.input_value()!r} instead of {value!r}")


def start_and_stop(page: Any, photos: list[str], name: str, steps: int) -> None:
    """Upload ``photos``, train ``name`` for ``steps`` (a checkpoint every 20) and Stop it after a few steps."""
    page.locator("#train-photos input[type=file]").first.set_input_files(photos)
    wait_for_text(page, "#prepare-note", f"{len(photos)} photo(s) ready")
    page.fill("#lora-name textarea, #lora-name input", name)
    page.locator("#train-advanced .label-wrap").click()
    for selector, value in (("#train-steps", str(steps)), ("#checkpoint-every", "20"), ("#train-resolution", "64")):
        set_number(page, selector, value)
    page.click("#train")
    page.wait_for_function(  # "Training name: step 3 of 80": a step has run, so stopping keeps it
        "() => /step [1-9]\\d* of/.test(document.querySelector('#train-status')?.innerText || '')"
    )
    page.click("#cancel-train")
    wait_for_text(page, "#train-status", "Cancelled after")


def picked(page: Any, name: str) -> None:
    """Pick ``name`` in the Train tab's Person picker and wait until its photos are on screen."""
    pick(page, "#train-person", f"{name} (2 photos)")
    wait_for_text(page, "#prepare-note", f"{name}: 2 photo(s)")
    page.locator("#crops img").first.wait_for(state="visible")


@pytest.fixture
def photos(astronaut: Image.Image, tmp_path: Path) -> list[str]:
    return two_photos(astronaut, tmp_path, "person")


def test_a_stopped_training_is_resumed_after_a_reload(page: Any, app: tuple[str, Path], photos: list[str]) -> None:
    start_and_stop(page, photos, "resumed", steps=80)
    shot(page, "stopped", "#train-status")
    folder = app[1] / "resumed"
    assert not (folder / "pytorch_lora_weights.safetensors").exists()
    page.reload()
    page.wait_for_selector("#target")
    page.get_by_role("tab", name="Train a person").click()
    picked(page, "resumed")
    resume = page.locator("#resume-train")
    resume.wait_for(state="visible")
    assert resume.inner_text().startswith("Resume from step ")
    assert page.locator("#start-over").is_visible()
    assert page.locator("#train-steps input[type=number]").input_value() == "80"  # what Resume runs, on screen
    page.locator("#train-advanced .label-wrap").click()
    assert page.locator("#checkpoint-every input[type=number]").input_value() == "20"
    wait_for_text(page, "#prepare-note", "stopped before its end")
    shot(page, "offer", "#train-person")
    resume.click()
    wait_for_text(page, "#train-status", "is ready")
    assert "after 80 training steps" in page.locator("#train-status").inner_text()
    assert (folder / "pytorch_lora_weights.safetensors").is_file()
    resume.wait_for(state="hidden", timeout=10_000)  # the offer goes once the training has ended
    assert not page.locator("#start-over").is_visible() and "stopped" not in page.locator("#prepare-note").inner_text()
    wait_for_text(page, "#rank-note", "so no save is picked for you")  # ranked after resuming too: noise, no face
    shot(page, "resumed", "#train-status")
    page.get_by_role("tab", name="Swap a face").click()
    assert page.locator("#lora input").input_value().startswith("resumed (trained")


def test_start_over_asks_then_trains_from_the_first_step(page: Any, app: tuple[str, Path], photos: list[str]) -> None:
    start_and_stop(page, photos, "restarted", steps=80)
    folder = app[1] / "restarted"
    assert list(folder.glob("checkpoint-*"))
    picked(page, "restarted")
    page.locator("#start-over").wait_for(state="visible")
    shot(page, "start-over-offer", "#train-person")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("#start-over")
    wait_for_text(page, "#train-status", "Nothing was deleted")
    assert questions and "restarted" in questions[0] and list(folder.glob("checkpoint-*"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#start-over")
    wait_for_text(page, "#train-status", "Press Train")
    assert sorted(entry.name for entry in folder.iterdir()) == ["dataset"]
    page.locator("#start-over").wait_for(state="hidden", timeout=10_000)
    assert not page.locator("#resume-train").is_visible()
    wait_for_text(page, "#prepare-note", "added earlier")  # no Resume offered any more
    shot(page, "started-over", "#train-status")
    set_number(page, "#train-steps", "3")
    page.click("#train")
    wait_for_text(page, "#train-status", "is ready")
    assert "after 3 training steps" in page.locator("#train-status").inner_text()
    shot(page, "trained-again", "#train-status")


EXPERT_WORDS = ("LoRA", "rank", "learning rate", "checkpoint", "dataframe", "CSV")


def expert_words_on_screen(page: Any) -> list[str]:
    """The expert words in what the page shows (hidden tabs and the closed Advanced section show nothing)."""
    shown = page.locator("body").inner_text().lower()
    return [word for word in EXPERT_WORDS if word.lower() in shown]


def test_the_train_tab_speaks_the_users_words(page: Any, photos: list[str]) -> None:
    """Issue 21, item 8: a newcomer meets no jargon in the Train tab until they open Advanced."""
    page.locator("#train-advanced").wait_for(state="visible")
    assert expert_words_on_screen(page) == []
    page.locator("#train-photos input[type=file]").first.set_input_files(photos)
    wait_for_text(page, "#prepare-note", "2 photo(s) ready")
    page.locator("#crops img").first.wait_for(state="visible")
    assert expert_words_on_screen(page) == []
    page.screenshot(path=str(ARTIFACTS / "train-words-1366x768.png"), full_page=True)
    page.locator("#train-advanced .label-wrap").click()  # the expert words are kept, in here
    wait_for_text(page, "#train-advanced", "Learning rate")
    assert {"rank", "learning rate", "checkpoint"} <= set(expert_words_on_screen(page))
