"""Remake README's screenshots: the app on the tiny model in Debian's Chromium at 1366x768.

    python scripts/readme_screenshots.py

Writes assets/screenshot-main.png (the astronaut loaded and swapped: the tiny model's random weights
paint noise, which is what it does) and assets/screenshot-group.png (two public-domain portraits side
by side, faces numbered). Both are palette PNGs so README stays light.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the app server and page driver the browser tests use

from app_server import serving_app  # noqa: E402
from browser_driver import DESKTOP, browser_missing, chromium, generate, open_app, upload  # noqa: E402

MAX_BYTES = 300_000


def group_photo(path: Path) -> Path:
    """Eileen Collins (assets/astronaut.jpg) and Grace Hopper (assets/grace_hopper.jpg) side by side."""
    with Image.open(ASSETS / "astronaut.jpg") as astronaut, Image.open(ASSETS / "grace_hopper.jpg") as hopper:
        group = Image.new("RGB", (astronaut.width + hopper.width, max(astronaut.height, hopper.height)), (236,) * 3)
        group.paste(astronaut.convert("RGB"), (0, group.height - astronaut.height))
        group.paste(hopper.convert("RGB"), (astronaut.width, 0))
    group.save(path, quality=92)
    return path


def save_small(screenshot: Path, target: Path) -> None:
    """The screenshot as a 256-colour PNG (a fraction of the size; the page is mostly flat colour)."""
    with Image.open(screenshot) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, optimize=True
        )
    size = target.stat().st_size
    print(f"{target.relative_to(REPO)}: {size // 1000} kB")
    if size > MAX_BYTES:
        raise SystemExit(f"{target.name} is {size} bytes, over {MAX_BYTES}")


def main() -> int:
    missing = browser_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 2
    from faceswap_core.models import save_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = save_tiny_model(work / "tiny")
        (work / "loras").mkdir()
        with serving_app(model, work / "loras", work / "app.log") as (url, _), chromium() as browser:
            page = open_app(browser, url, DESKTOP)
            upload(page, ASSETS / "astronaut.jpg")
            generate(page)
            page.mouse.move(0, 0)  # no hover highlight on the button
            page.screenshot(path=str(work / "main.png"))
            save_small(work / "main.png", ASSETS / "screenshot-main.png")

            page = open_app(browser, url, DESKTOP)
            upload(page, group_photo(work / "group.jpg"), note="2 faces found")
            page.screenshot(path=str(work / "group.png"))
            save_small(work / "group.png", ASSETS / "screenshot-group.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
