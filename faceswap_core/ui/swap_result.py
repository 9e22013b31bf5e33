"""The Swap tab's result: a before/after comparison at display size, the full-size download, the record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from faceswap_core.engine import SwapResult
from faceswap_core.ui import guards
from faceswap_core.ui.common import ResultFiles
from faceswap_core.ui.swap_photo import TargetPhoto, display_copy

# On a phone the result shows a screen above the Generate button: bring it into view (no move when it is in view).
SHOW_RESULT = "() => document.querySelector('#views')?.scrollIntoView({block: 'nearest', behavior: 'smooth'})"
RESULT_NOTE = "Drag the handle to compare before and after. To change the mask, open **Photo and mask**."


def show_result(files: ResultFiles, photo: TargetPhoto, result: SwapResult) -> tuple[Any, Any, dict[str, Any]]:
    """The comparison at display size as JPEG files (fast to encode and send: Gradio would encode images
    as WebP, seconds at 2048 px), the download at full size with its parameters, and the public record."""
    record = guards.public_record(result.record)
    path = files.save(result, record)
    if photo.before is None or not photo.before.is_file():  # the same for every result of this photo
        photo.before = files.save_display(display_copy(photo.original, photo.display_size))
    after = files.save_display(display_copy(result.image, photo.display_size))
    photo.last = (str(photo.before), str(after), str(path), record)
    width, height = result.image.size
    button = gr.DownloadButton(f"Download full-size PNG ({width}×{height})", value=str(path), visible=True)
    return (str(photo.before), str(after)), button, record


def result_handle(photo: TargetPhoto | None) -> Any:
    """The comparison's handle just left of the repainted faces (in % of the width), so "after" shows them at
    once: in the middle, a face on the left half looked as if nothing had happened until it was dragged."""
    record = photo.last[3] if photo is not None and photo.last is not None else {}
    lefts = [
        photo.faces[entry["face"]].box[0]
        for entry in record.get("faces", [])
        if photo is not None and isinstance(entry.get("face"), int) and 0 <= entry["face"] < len(photo.faces)
    ]
    if photo is None or not lefts:
        return gr.ImageSlider(slider_position=50)
    return gr.ImageSlider(slider_position=min(50.0, max(5.0, 100.0 * min(lefts) / photo.size[0] - 3.0)))


@dataclass
class ResultView:
    """The Result tab's components."""

    progress_line: gr.Markdown
    comparison: gr.ImageSlider
    candidates: gr.Gallery


def result_tab(height: int) -> ResultView:
    """The Result tab's contents (inside the current ``gr.Tab``): progress line, comparison, candidates."""
    progress_line = gr.Markdown(elem_id="progress-line")  # steps and time left while it runs
    comparison = gr.ImageSlider(label="Before / after: drag the handle", type="pil", height=height, elem_id="result")
    candidates = gr.Gallery(
        visible=False,
        columns=4,
        height="auto",  # the captions sit under the thumbnails: a fixed height cut them off
        allow_preview=False,
        object_fit="contain",
        elem_id="candidates",
    )
    return ResultView(progress_line, comparison, candidates)
