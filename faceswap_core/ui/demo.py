"""The whole page: a title, the model status, the Swap and Train tabs; built around one shared engine.

The base model loads in a background thread so the page (and its mask tools) is usable at once; the
status line polls until the model is ready, or shows why it failed and how to fix it.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from faceswap_core.engine import Engine
from faceswap_core.errors import FaceswapError
from faceswap_core.files import remove_stale
from faceswap_core.photo_store import PhotoStore
from faceswap_core.settings import DEFAULT_VQA_MODEL, PHOTO_TTL_S, RESULT_MAX_AGE_S, SCRATCH_MAX_AGE_S, PublicLimits
from faceswap_core.ui import page
from faceswap_core.ui.common import current_owner
from faceswap_core.ui.guards import public_message, safe_inputs
from faceswap_core.ui.swap import SwapHandlers, create_swap_tab
from faceswap_core.ui.train import TrainHandlers, create_train_tab
from faceswap_core.ui.video import VideoHandlers, create_video_tab

TITLE = "Face swap"
INTRO = (
    "**Swap:** upload a photo (faces are numbered and masked in blue), pick or add a person, press **Generate**. "
    "**Train:** teach the app a person better from 5–20 photos."
)
STATUS_POLL_SECONDS = 2.0
THEME = gr.themes.Soft(primary_hue="orange")
# Words for the keys Gradio 6.31 uses but does not define: its screen-reader line read "common.complete" aloud
# after each event (and showed it to anyone reading the page's text).
I18N = gr.I18n(en={"common.complete": "Done"})
CSS = (
    """
#model-status p { margin: 0; }
#model-status.error { border-left: 4px solid #dc2626; padding-left: 8px; }
footer { display: none !important; }
/* a short header, so the photo, its mask and Generate share one 1366x768 screen */
#title h1 { margin: 0 0 2px; font-size: 1.6rem; }
#title p { margin: 0; }
/* the empty editor: a hint instead of a blank canvas at "1000%" with tools for nothing */
#target .image-container:has(> .empty) :is(.top-panel, .toolbar-wrap, .pixi-target, .pixi-target-crop, .empty) {
  visibility: hidden;
}
#target .image-container:has(> .empty)::after {
  content: "Upload a photo with the button above, or press Example";
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  padding: 24px; text-align: center; font-size: 1.1rem; color: var(--body-text-color-subdued);
}
/* the brush and eraser beside the photo, not over it */
#target .pixi-target, #target .pixi-target-crop { left: 40px; width: calc(100% - 40px); }
/* candidate captions under the thumbnail, not over the chin */
#candidates .grid-container { grid-template-columns: repeat(auto-fill, minmax(120px, 170px)) !important; }
#candidates .thumbnail-item {
  aspect-ratio: auto !important; height: auto !important; overflow: visible !important;
  display: flex; flex-direction: column;
}
#candidates .thumbnail-item img { aspect-ratio: 1; width: 100% !important; height: auto !important; flex: none; }
#candidates .caption-label { position: static; max-width: 100%; margin: 2px 0 0; transform: none; white-space: normal; }
@media (max-width: 640px) {  /* a phone */
  #target, #result { height: 340px !important; }
  #result > label[data-testid="block-label"] { display: none; }  /* it sits under the zoom bar */
  #photo-bar > #upload { flex-basis: 100% !important; }  /* a full-width button, then face and Auto mask */
  #photo-bar > .form:has(#face-index) { flex: 2 1 0 !important; }  /* "Face 1 (largest)" whole */
  #generate-bar button { white-space: nowrap; padding-left: 6px; padding-right: 6px; }
  #fast .info-text { display: none; }
  #pages > .tab-wrapper button[role=tab] { padding: 0 6px; font-size: 13px; }  /* all three on one line at 390 px */
}
"""
    + page.CSS
)
HEAD = page.HEAD


class ModelLoader:
    """Loads the engine's base model once, off the request path, and describes where that stands."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread: threading.Thread | None = None
        self._unexpected: str | None = None

    def start(self) -> None:
        if self._thread is None and not self.engine.loaded:
            self._thread = threading.Thread(target=self._load, name="load-base-model", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            self.engine.load()
        except FaceswapError:
            pass  # the engine keeps the message in load_error
        except Exception as err:  # a bug or a broken install: still say it on the page instead of a blank
            self._unexpected = f"{type(err).__name__}: {err}"

    @property
    def done(self) -> bool:
        return self.engine.loaded or self.error is not None

    @property
    def error(self) -> str | None:
        return self.engine.load_error or self._unexpected

    def message(self) -> str:
        model = f"`{public_message(self.engine.base_model)}`"
        if self.engine.loaded:
            return f"✅ Model ready: {model}"
        if self.error:
            return (
                f"⚠️ **The base model could not be loaded.** {public_message(self.error)}\n\n"
                "Restart the app with `--base MODEL` (a Hugging Face id, a local folder or a `.safetensors` file) "
                "or set `FACESWAP_BASE_MODEL`. The mask tools below still work meanwhile."
            )
        return f"⏳ Loading the base model {model}… (the first start downloads it). You can prepare the mask meanwhile."

    def poll(self) -> tuple[Any, Any]:
        """For the page's timer: the status text, and the timer stopped once there is nothing left to wait for."""
        classes = ["error"] if self.error else []
        return gr.Markdown(self.message(), elem_classes=classes), gr.Timer(active=not self.done)


def create_demo(
    engine: Engine,
    *,
    load_model: bool = True,
    vqa_model: str = DEFAULT_VQA_MODEL,
    shared_people: bool = False,
    photo_ttl_s: float = PHOTO_TTL_S,
    limits: PublicLimits | None = None,
    exclusive_training: bool = False,
) -> gr.Blocks:
    """The app for ``engine``; ``load_model`` starts loading the base model in the background.

    The app is a public server: ``engine`` must take LoRAs by registry name only (built with
    ``allow_paths=False``), and Gradio deletes its cached files (uploads, returned images) once they are
    an hour old. Each visitor sees the library and their own people only, unless ``shared_people`` (a
    private workstation); full-size photos are dropped from the server after ``photo_ttl_s`` unused;
    ``limits`` bound each request; ``exclusive_training`` makes swaps wait while a training runs (see TrainHandlers).
    """
    if engine.loras.allow_paths:
        raise ValueError("the app serves anyone who can reach it: build its Engine with allow_paths=False")
    for leftover in (".*-*", ".*.tmp"):  # a person being added, a file being written, when a kill -9 came
        remove_stale(engine.loras.folder, leftover, SCRATCH_MAX_AGE_S)
    engine.loras.viewer = None if shared_people else current_owner
    loader = ModelLoader(engine)
    limits = limits or PublicLimits()
    swap_handlers = SwapHandlers(engine, photos=PhotoStore(ttl_s=photo_ttl_s), limits=limits)
    train_handlers = TrainHandlers(engine, vqa_model=vqa_model, limits=limits, exclusive_training=exclusive_training)
    with gr.Blocks(title=TITLE, delete_cache=(RESULT_MAX_AGE_S, RESULT_MAX_AGE_S)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
        status = gr.Markdown(loader.message(), elem_id="model-status")
        timer = gr.Timer(STATUS_POLL_SECONDS)
        with gr.Tabs(overflow_behavior="wrap", elem_id="pages"):  # every tab in sight on a phone, no "..." menu
            with gr.Tab("Swap a face", id="swap"):
                lora_picker = create_swap_tab(engine, swap_handlers)
            with gr.Tab("Train a person", id="train"):
                create_train_tab(engine, lora_picker, train_handlers)
            with gr.Tab("Swap in a video", id="video"):
                create_video_tab(engine, VideoHandlers(engine, swap_handlers.files))
        timer.tick(loader.poll, None, [status, timer], queue=False)
        demo.load(loader.poll, None, [status, timer], queue=False)
    safe_inputs(demo)
    if load_model:
        loader.start()
    return demo
