"""What the Swap tab and its API do, gathered on one object: :class:`SwapHandlers`.

Each section's handlers live with the section (faces and masks, adding a person, Try strengths); this
adds Generate and ``/swap_request``. Handlers take plain values, settings by field name, so tests call
them without a browser, and every one of them checks what it gets: each is reachable over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from faceswap_core.images import check_header
from faceswap_core.requests import SwapRequest
from faceswap_core.ui import guards
from faceswap_core.ui.common import current_cancel, user_errors
from faceswap_core.ui.progress import step_progress
from faceswap_core.ui.swap_people import PeopleHandlers
from faceswap_core.ui.swap_result import show_result
from faceswap_core.ui.swap_strengths import StrengthHandlers


class SwapHandlers(PeopleHandlers, StrengthHandlers):
    """The Swap tab's handlers: faces and masks, people, Try strengths, Generate and the request API."""

    @user_errors
    def generate(self, fields: Mapping[str, Any], progress: gr.Progress | None = None) -> tuple[Any, ...]:
        """Repaint every face that gets a person, in one request with one progress bar."""
        photo = self._photo(fields)
        request = self._request(fields, photo)
        report = step_progress(progress, "Generating", len(request.faces), "faces")
        result = self.engine.run(request, progress=report, cancel=current_cancel())
        slider, button, record = show_result(self.files, photo, result)
        return slider, button, record, gr.Gallery(value=None, visible=False), [], gr.Tabs(selected="result")

    @user_errors
    def api_request(
        self,
        request: str | None,
        image: str | None,
        mask: str | None = None,
        identity_photos: list[str] | None = None,
        reference_face: str | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict[str, Any]]:
        """For scripts: a swap written down as JSON (:class:`SwapRequest`), its files uploaded beside it.

        Every file comes from the upload, never from the JSON, so a request cannot name a file on the server.
        """
        if not image:
            raise gr.Error("no target image was sent")
        for path, name in ((image, "target image"), (mask, "mask"), (reference_face, "reference photo")):
            if path:
                check_header(str(path), name=name)  # refused from its header, before anything decodes it
        files = {
            "image": str(image),
            "mask": str(mask) if mask else None,
            "reference_face": str(reference_face) if reference_face else None,
            "identity_photos": list(guards.uploaded_photos(identity_photos)),
        }
        request = SwapRequest.from_json(request or "{}", files=files)
        self.limits.check_face_steps(max(1, len(request.faces)), request.settings.steps)
        report = step_progress(progress, "Generating", len(request.faces), "faces")
        result = self.engine.run(request, progress=report, cancel=current_cancel())
        record = guards.public_record(result.record)
        return str(self.files.save(result, record)), record
