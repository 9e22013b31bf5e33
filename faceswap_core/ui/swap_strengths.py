"""Try strengths: one sweep over strengths on the chosen face, ranked by likeness, shown as face crops.

Clicking a candidate makes it the result. The strengths to try follow the Keep expression switch
(higher when a ControlNet holds the expression).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import gradio as gr

from faceswap_core.engine import SwapResult
from faceswap_core.images import load_image
from faceswap_core.settings import MAX_REFERENCE_PHOTOS, SEARCH_STRENGTHS
from faceswap_core.sweep import face_crop, parse_strengths, sweep
from faceswap_core.ui import guards, words
from faceswap_core.ui.common import current_cancel, user_errors
from faceswap_core.ui.progress import step_progress
from faceswap_core.ui.swap_faces import FaceHandlers, keep_expression_weight
from faceswap_core.ui.swap_photo import TargetPhoto, face_index, summary
from faceswap_core.ui.swap_result import show_result


def strength_of(result: SwapResult) -> float:
    """The strength a candidate was made with (a sweep repaints one face: the record's first)."""
    return float(result.record["faces"][0]["strength"])


def candidate_caption(result: SwapResult) -> str:
    """A candidate's strength and, when ranked, its likeness to the person's photos in the user's words."""
    strength = strength_of(result)
    if result.identity_distance is None:
        return f"strength {strength:.2f}" + (" · no face found" if "identity_distance" in result.record else "")
    return f"strength {strength:.2f} · {words.likeness(result.identity_distance)}"


def expression_strengths(on: bool) -> tuple[float, str]:
    """Keep expression switched: the recommended strength and the strengths to try move with it."""
    from faceswap_core.conditioning.controlnet import strengths_for

    recommended, candidates = strengths_for(1.0 if on else 0.0)
    return recommended, ", ".join(f"{value:g}" for value in candidates)


class StrengthHandlers(FaceHandlers):
    """What Try strengths and a click on one of its candidates do."""

    @user_errors
    def try_strengths(self, fields: Mapping[str, Any], progress: gr.Progress | None = None) -> tuple[Any, ...]:
        """Several strengths on the chosen face with one seed, ranked by likeness to photos of the person."""
        strengths = parse_strengths(fields.get("strengths") or "", keep_expression_weight(fields))  # before any work
        photo = self._photo(fields)
        request = self._request(fields, photo)
        face = face_index(photo, fields.get("face")) if photo.faces else None
        chosen = next((f for f in request.faces if f.face == face), request.faces[0])
        self.limits.check_face_steps(len(strengths), request.settings.steps)
        photos, source = self.reference_photos(fields.get("references"), chosen.person)
        results = sweep(
            self.engine,
            request,
            face=chosen.face,
            strengths=strengths,
            references=photos or None,
            progress=step_progress(progress, "Trying strengths", len(strengths), "strengths"),
            cancel=current_cancel(),
        )
        candidates, gallery = [], []
        for result in results:
            record = guards.public_record(result.record)
            path = self.files.save(result, record, stem="candidate")
            candidates.append({"path": str(path), "record": record, "face": face, "strength": strength_of(result)})
            gallery.append((face_crop(result), candidate_caption(result)))
        if photos:  # one line: a longer label covers the top of the thumbnails
            label = f"{len(results)} candidates, most alike first (to the {source})"
        else:
            label = f"{len(results)} candidates, not ranked: add photos of the person to rank them"
        slider, button, record = show_result(self.files, photo, results[0])
        shown = gr.Gallery(value=gallery, visible=True, label=label)
        return slider, button, record, shown, candidates, gr.Tabs(selected="result")

    def reference_photos(self, uploaded: list[str] | None, person: str | None) -> tuple[list[str], str]:
        """Photos to rank candidates by: the person's own (those that steer it), else the uploaded ones."""
        who = self._who(person)
        if who.photos:
            return [str(p) for p in who.photos[:MAX_REFERENCE_PHOTOS]], f"photos of {who.name}"
        return list(guards.uploaded_photos(uploaded)), "uploaded photos"

    @user_errors
    def show_candidate(
        self, photo: TargetPhoto | None, candidates: list[dict[str, Any]], event: gr.SelectData
    ) -> tuple:
        """Clicking a candidate makes it the result (comparison, download, parameters), and its strength the
        face's, so the next Generate starts from the one picked (the Strength slider and the summary say so)."""
        if photo is None or not isinstance(event.index, int) or not 0 <= event.index < len(candidates):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        chosen = candidates[event.index]
        result = SwapResult(load_image(chosen["path"], name="candidate"), chosen["record"])
        slider, _, record = show_result(self.files, photo, result)
        label = f"Download full-size PNG ({result.image.width}×{result.image.height})"
        face, strength = chosen.get("face"), chosen.get("strength")
        if face in photo.choices and strength is not None:
            photo.choices[face] = replace(photo.choices[face], strength=strength)
            picked: tuple[Any, Any] = (gr.Slider(value=strength), summary(photo))
        else:
            picked = (gr.skip(), gr.skip())
        return slider, gr.DownloadButton(label, value=chosen["path"], visible=True), record, *picked


def strengths_panel() -> gr.Textbox:
    """The accordion that says which strengths Try strengths tries; returns its text box."""
    with gr.Accordion("Try strengths: what to try", open=False, elem_id="strengths-panel"):
        return gr.Textbox(
            value=", ".join(f"{s:g}" for s in SEARCH_STRENGTHS),
            label="Strengths to try",
            info="Ranked by likeness to the person's photos (or the ones uploaded above)",
            elem_id="strengths",
        )
