"""Drive the running app in Debian's Chromium as a person would: shared by the browser tests, the
browser benchmark and the README screenshot script, so all three walk the same path through the page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000
DESKTOP = {"width": 1366, "height": 768}  # the most common laptop screen
PHONE = {"width": 390, "height": 844}  # a current phone, portrait
RESULT_SHOWN = (
    "() => { const imgs = document.querySelectorAll('#result img');"
    " return imgs.length >= 2 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0); }"
)


def browser_missing() -> str | None:
    """Why the browser cannot be driven here (a sentence), or None when it can."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (playwright's Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser: Any, url: str, viewport: dict[str, int], **context: Any) -> Any:
    """A new page on ``url`` at ``viewport`` size, once the Swap tab's editor is on it."""
    page = browser.new_context(viewport=viewport, **context).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#target")
    return page


def wait_for_text(page: Any, selector: str, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Until ``selector``'s text includes ``text``; on a timeout the error says what it showed instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
            arg=[selector, text],
            timeout=timeout_ms,
        )
    except PlaywrightTimeout:
        shown = page.evaluate("sel => document.querySelector(sel)?.innerText ?? '(no such element)'", selector)
        toasts = page.evaluate("() => Array.from(document.querySelectorAll('.toast-body')).map(t => t.innerText)")
        raise AssertionError(
            f"{selector} never said {text!r} in {timeout_ms / 1000:g} s; it says {shown[-300:]!r}; pop-ups: {toasts}"
        ) from None


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


def choose_photo(page: Any, path: Path) -> float:
    """Click the Upload button and pick ``path`` in the file chooser; the page's clock when it was picked."""
    wait_for_text(page, "#model-status", "Model ready")
    with page.expect_file_chooser() as chooser:
        page.click("#upload")
    # a full resource-timing buffer (250 entries) would hide the photo's fetch from wait_mask_painted
    started = page.evaluate("performance.clearResourceTimings() || performance.now()")
    chooser.value.set_files(str(path))
    return started


def wait_mask_painted(page: Any, since: float, note: str = "is masked", timeout_ms: int = 60_000) -> None:
    """Until the note says the faces are masked and the browser has fetched the numbered photo (a file
    the server made after ``since``, the page's clock from :func:`choose_photo`) and drawn a frame."""
    wait_for_text(page, "#mask-note", note, timeout_ms=timeout_ms)
    page.wait_for_function(
        "since => performance.getEntriesByType('resource').some("
        " e => e.name.includes('file=') && e.startTime > since && e.responseEnd > 0)",
        arg=since,
        timeout=timeout_ms,
    )
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def upload(page: Any, path: Path, note: str = "is masked") -> None:
    """Upload a photo with the Upload button and wait until its faces are numbered and masked."""
    since = choose_photo(page, path)
    wait_mask_painted(page, since, note)
    wait_idle(page, "#target")


RESULT_SOURCES = "() => Array.from(document.querySelectorAll('#result img')).map(i => i.src).join(' ')"


def generate(page: Any) -> None:
    """Press Generate and wait until the before/after comparison shows this request's images (not the last
    test's result, which a page shared by several tests still shows)."""
    earlier = page.evaluate(RESULT_SOURCES)
    page.click("#generate")
    page.wait_for_function(
        f"(earlier) => ({RESULT_SHOWN})() && ({RESULT_SOURCES})() !== earlier", arg=earlier, timeout=TIMEOUT_MS
    )


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


def big_photo(path: Path, size: tuple[int, int] = (6000, 4000), source: Path | None = None) -> Path:
    """A phone-sized JPEG (24 MP by default) made by upscaling a real face photo, written to ``path``.

    The source is ``source`` or scikit-image's astronaut (NASA, public domain), cut to the size's shape
    around her face.
    """
    from PIL import Image, ImageOps

    if source is None:
        from skimage import data

        photo = Image.fromarray(data.astronaut())
    else:
        photo = Image.open(source).convert("RGB")
    ImageOps.fit(photo, size, Image.BICUBIC, centering=(0.5, 0.2)).save(path, quality=90)
    return path


def two_photos(face: Any, folder: Path, stem: str) -> list[str]:
    """Two photos of one person (``face``, a PIL image): upright and slightly turned."""
    from PIL import Image

    photos = []
    for index, angle in enumerate((0, 6)):
        path = folder / f"{stem}{index}.jpg"
        face.rotate(angle, resample=Image.BICUBIC).save(path)
        photos.append(str(path))
    return photos
