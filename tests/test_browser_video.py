"""A real browser drives the Video tab on the tiny model: upload a clip, pick a face, preview, run, download.

Its own server (as in test_browser.py), so the Swap tab's tests keep theirs to themselves. A failing
test leaves a screenshot in test-artifacts/. Skipped when /usr/bin/chromium is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import REPO, running_app
from browser_driver import CHROMIUM, TIMEOUT_MS, chromium, open_app, wait_for_text
from PIL import Image
from video_factory import around_face, camera_move, write_clip

from faceswap_core.media import probe, read_frames

ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    lora_dir = tmp_path_factory.mktemp("video-loras")
    with running_app(tiny_model_dir, lora_dir, ARTIFACTS / "browser-video-app.log") as url, chromium() as browser:
        yield open_app(browser, url, {"width": 1400, "height": 1000}, accept_downloads=True)


def test_upload_pick_preview_run_and_download(page: Any, astronaut: Image.Image, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", camera_move(around_face(astronaut, 1.3), 6, size=128, kind="pan"))
    try:
        wait_for_text(page, "#model-status", "Model ready")
        page.get_by_role("tab", name="Swap in a video").click()
        page.locator("#video-clip input[type=file]").set_input_files(str(clip))
        wait_for_text(page, "#video-faces", "Face 1")
        wait_for_text(page, "#video-info", "1 face(s)")
        face = page.locator("#video-faces").get_by_label("Face 1", exact=True)
        face.uncheck()
        face.check()  # picked as a person would
        page.locator("#video-fast").get_by_label(
            "Fast mode (few steps)"
        ).uncheck()  # the tiny model has no few-step LoRA
        page.click("#video-preview-button")
        page.wait_for_function(
            "() => { const i = document.querySelector('#video-preview img'); return i && i.naturalWidth > 0; }",
            timeout=TIMEOUT_MS,
        )
        page.click("#video-run")
        link = page.locator("#video-download a").first
        link.wait_for(state="visible", timeout=TIMEOUT_MS)
        wait_for_text(page, "#video-message", "6 frames")
        with page.expect_download() as download_info:
            link.click()
        saved = tmp_path / "result.mp4"
        download_info.value.save_as(saved)
        info = probe(saved)
        assert len(list(read_frames(info))) == 6 and info.has_audio
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "video-tab.png"), full_page=True)
        raise
