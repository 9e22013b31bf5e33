"""The Video tab: upload a clip, pick faces on a frame (or a photo of the person), preview one frame, run, download.

Every handler here is also an HTTP endpoint (``/video_faces``, ``/video_preview``, ``/swap_video``),
so each checks its arguments itself. A run keeps its work in a job folder named after the clip and
the settings: after Stop (or a closed tab) the same run resumes from the last finished frame. Fast
mode is on by default here: a clip is hundreds of repaints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Any

import gradio as gr
from PIL import Image

from faceswap_core.clip_request import ClipRequest, plan_clip
from faceswap_core.engine import Engine
from faceswap_core.errors import SettingsError
from faceswap_core.face_choice import NO_LORA
from faceswap_core.faces.badges import numbered
from faceswap_core.images import check_header
from faceswap_core.media import probe
from faceswap_core.people import People
from faceswap_core.requests import FACE_REFERENCE, FaceRequest, SwapRequest
from faceswap_core.settings import (
    KEEP_EXPRESSION,
    MAX_SEED,
    RECOMMENDED_STRENGTH_KEEP_EXPRESSION,
    STRENGTH,
    SwapSettings,
    VideoLimits,
)
from faceswap_core.ui import guards
from faceswap_core.ui.common import ResultFiles, cancellable, current_cancel, range_slider, user_errors
from faceswap_core.ui.person_picker import person_choices
from faceswap_core.video import VideoSettings, faces_at, preview, swap_clip

VIDEO_STRENGTH = 0.5  # a little lower than for photos: less to hold steady from frame to frame


class VideoHandlers:
    """The tab's handlers around one engine; results and job folders live in one temporary folder."""

    def __init__(self, engine: Engine, files: ResultFiles | None = None, limits: VideoLimits | None = None) -> None:
        self.engine, self.files, self.limits = engine, files or ResultFiles(), limits or VideoLimits()

    def _clip(self, clip: Any) -> str:
        if not clip or not isinstance(clip, (str, os.PathLike)):
            raise SettingsError("upload a clip first (mp4, mov, webm or mkv)")
        return str(clip)

    def show_faces(self, clip: Any, at_s: Any) -> tuple[Image.Image, Any, str]:
        """The frame at ``at_s`` with its faces numbered, and the face picker (face 1 chosen)."""
        info = probe(self._clip(clip), self.limits)
        at = guards.number(at_s or 0, "time", None)
        frame, faces = faces_at(info, max(0.0, at), landmarks=self.engine.landmarks)
        choices = [(f"Face {n}", str(n)) for n in range(1, len(faces) + 1)]
        summary = (
            f"{info.width}x{info.height}, {float(info.fps):.3g} fps, {info.duration_s:.1f} s"
            f"{', with sound' if info.has_audio else ''}. "
            + (f"{len(faces)} face(s) on the frame at {frame.time_s:.2f} s." if faces else "No face on this frame.")
        )
        picker = gr.CheckboxGroup(choices=choices, value=[choices[0][1]] if choices else [])
        return numbered(Image.fromarray(frame.pixels), faces), picker, summary

    def request(
        self,
        clip: Any,
        faces: Any,
        at_s: Any,
        person: Any,
        reference: Any,
        strength: Any,
        seed: Any,
        fast: Any,
        keep_on: Any = False,
        keep_weight: Any = KEEP_EXPRESSION.default,
    ) -> ClipRequest:
        """The tab's widgets (face numbers from 1) as the request a script would send, each value checked.

        ``keep_on`` and ``keep_weight``: Keep expression, the ControlNet on every frame's landmarks (off: 0).
        """
        numbers = faces if isinstance(faces, list) else [] if faces in (None, "") else [faces]
        face_indexes = tuple(int(guards.number(n, "face", None, integer=True)) - 1 for n in numbers)
        if any(index < 0 for index in face_indexes):
            raise SettingsError("face numbers start at 1")
        settings = SwapSettings(
            strength=guards.number(strength, "strength", STRENGTH),
            seed=int(guards.number(seed if seed not in (None, "") else 0, "seed", None, integer=True)),
            fast=bool(fast),
            keep_expression=guards.number(keep_weight, "keep expression weight", KEEP_EXPRESSION) if keep_on else 0.0,
        )
        name = guards.text(person, "person", max_chars=300).strip()
        if reference is None and not face_indexes:
            raise SettingsError("tick at least one face, or give a photo of the person to follow")
        chosen = (FACE_REFERENCE,) if reference else face_indexes
        swap = SwapRequest(
            self._clip(clip),
            faces=tuple(FaceRequest(face) for face in chosen),
            person=name if name and name != NO_LORA else None,
            settings=settings,
            reference_face=str(reference) if reference else None,
        )
        return ClipRequest(swap, pick_s=max(0.0, guards.number(at_s or 0, "time"))).validate()

    def preview(self, *fields: Any) -> Image.Image:
        """The page's Preview: the frame at the picked time swapped, with the seeds the whole clip will use."""
        return self.preview_request(self.request(*fields))

    def run(self, *fields: Any, progress: gr.Progress = gr.Progress()) -> tuple[str, str, str]:
        """The page's Swap the whole clip (a stopped run of the same clip and settings resumes)."""
        return self.run_request(self.request(*fields), progress)

    def api_request(self, clip: Any, request: str | None, reference: str | None = None) -> ClipRequest:
        """For scripts: a clip's swap as JSON (:class:`ClipRequest`), the clip and the reference photo uploaded
        beside it; files come from the upload, never from the JSON, so a request cannot name a server file."""
        if reference:
            check_header(str(reference), name="reference photo")
        files = {"clip": self._clip(clip), "reference_face": str(reference) if reference else None}
        return ClipRequest.from_json(request or "{}", files=files)

    def api_preview(self, clip: Any, request: str | None, reference: str | None = None) -> Image.Image:
        """``/video_preview``: one frame of the clip swapped as the request says."""
        return self.preview_request(self.api_request(clip, request, reference))

    def api_run(
        self, clip: Any, request: str | None, reference: str | None = None, progress: gr.Progress = gr.Progress()
    ) -> tuple[str, str, str]:
        """``/swap_video``: the whole clip swapped as the request says."""
        return self.run_request(self.api_request(clip, request, reference), progress)

    def _plan(self, request: ClipRequest) -> VideoSettings:
        """The request's people resolved (this visitor's and the library's) and ``all`` counted on its frame."""
        info = probe(request.clip, self.limits)

        def count() -> int:
            return len(faces_at(info, request.pick_s, landmarks=self.engine.landmarks)[1])

        return plan_clip(request, People(self.engine.loras), count)

    def preview_request(self, request: ClipRequest) -> Image.Image:
        settings = self._plan(request)
        _, after = preview(self.engine, request.clip, settings, self.limits)
        return after

    def run_request(self, request: ClipRequest, progress: Any) -> tuple[str, str, str]:
        settings = self._plan(request)
        path = request.clip
        self.files.prune()
        self._prune_jobs()
        key = hashlib.sha256(json.dumps([path, repr(settings)]).encode()).hexdigest()[:16]
        output = self.files.folder / f"faceswap-video-{key}.mp4"

        def report(stage: str, done: int, total: int, left_s: float | None) -> None:
            left = "" if left_s is None else f", {left_s:.0f} s left"
            progress((done, max(total, done)), desc=f"{stage}: frame {done} of {total}{left}", unit="frames")

        job = swap_clip(
            self.engine,
            path,
            output,
            settings,
            job_folder=self.files.folder / "jobs" / key,
            limits=self.limits,
            progress=report,
            cancel=current_cancel(),
        )
        seconds = sum(job.timings.get(name, 0.0) for name in ("repaint_s", "detect_s", "encode_s"))
        message = f"{job.state.frames} frames, seeds {job.state.seeds}, {seconds:.0f} s of work."
        return str(output), str(output), message

    def people(self, current: Any) -> Any:
        """The Person list read again when opened: this visitor's people (added or trained in the other tabs
        since the page loaded) and the library's; the choice kept while it still exists."""
        choices = person_choices(self.engine, with_keep=False)
        return gr.Dropdown(choices=choices, value=current if current in {v for _, v in choices} else NO_LORA)

    def _prune_jobs(self) -> None:
        """Job folders untouched for the results' lifetime go (a public app must not fill its disk)."""
        oldest = time.time() - self.files.max_age_s
        for folder in (self.files.folder / "jobs").glob("*"):
            if folder.is_dir() and (folder / "job.json").stat().st_mtime < oldest:
                shutil.rmtree(folder, ignore_errors=True)


def video_strength(keep_on: bool) -> float:
    """Keep expression switched: with the ControlNet holding each frame, a clip takes a photo's high strength."""
    return RECOMMENDED_STRENGTH_KEEP_EXPRESSION if keep_on else VIDEO_STRENGTH


def create_video_tab(engine: Engine, handlers: VideoHandlers | None = None) -> None:
    """The tab's widgets and events (inside a ``gr.Tab`` of the page)."""
    handlers = handlers or VideoHandlers(engine)
    gr.Markdown(
        "**1.** Upload a clip: its faces are numbered on one frame. **2.** Tick the faces to replace and pick a "
        "person. **3.** Preview one frame, then swap the whole clip (Stop keeps the frames done; the same run "
        "resumes from there)."
    )
    with gr.Row():
        with gr.Column():
            clip = gr.Video(label="Clip (mp4, mov, webm, mkv)", sources=["upload"], elem_id="video-clip", height=300)
            with gr.Row():
                at_s = gr.Number(0, label="Pick faces at (s)", minimum=0, elem_id="video-at")
                faces = gr.CheckboxGroup([], label="Faces to replace", elem_id="video-faces")
            frame = gr.Image(label="Faces on that frame", interactive=False, elem_id="video-frame", height=260)
            info = gr.Markdown(elem_id="video-info")
        with gr.Column():
            person = gr.Dropdown(
                person_choices(engine, with_keep=False), value=NO_LORA, label="Person", elem_id="video-person"
            )
            reference = gr.Image(
                label="Or, instead of ticking faces: the face in the clip most like this photo",
                type="filepath",
                sources=["upload"],
                height=140,
                elem_id="video-reference",
            )
            with gr.Row():
                strength = gr.Slider(
                    STRENGTH.minimum, STRENGTH.maximum, VIDEO_STRENGTH, step=STRENGTH.step, label="Strength"
                )
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED)
            fast = gr.Checkbox(True, label="Fast mode (few steps)", elem_id="video-fast")
            with gr.Row():
                keep_on = gr.Checkbox(
                    False,
                    label="Keep expression",
                    info="A ControlNet holds each frame's pose and expression, so strength can go high",
                    elem_id="video-keep-expression",
                )
                keep_weight = range_slider(KEEP_EXPRESSION, label="Weight", elem_id="video-keep-expression-weight")
            with gr.Row():
                preview_button = gr.Button("Preview one frame", elem_id="video-preview-button")
                run_button = gr.Button("Swap the whole clip", variant="primary", elem_id="video-run")
                stop_button = gr.Button("Stop", elem_id="video-stop")
            preview_image = gr.Image(label="Preview", interactive=False, elem_id="video-preview", height=260)
            result = gr.Video(label="Result", interactive=False, elem_id="video-result", height=260)
            download = gr.File(label="Download", elem_id="video-download")
            message = gr.Markdown(elem_id="video-message")
    inputs = [clip, faces, at_s, person, reference, strength, seed, fast, keep_on, keep_weight]
    page_only: dict[str, Any] = {"api_visibility": "private"}  # the page's form; scripts send a request (below)
    keep_on.input(video_strength, keep_on, strength, queue=False, api_name=False)
    person.focus(handlers.people, person, person, queue=False, api_name=False)
    clip.upload(user_errors(handlers.show_faces), [clip, at_s], [frame, faces, info], api_name="video_faces")
    at_s.submit(user_errors(handlers.show_faces), [clip, at_s], [frame, faces, info], api_name=False)
    preview_button.click(user_errors(handlers.preview), inputs, preview_image, **page_only)
    running = run_button.click(
        cancellable(user_errors(handlers.run), outputs=3), inputs, [result, download, message], **page_only
    )
    stop_button.click(None, None, None, cancels=[running], queue=False)

    # The API for scripts (gradio_client): a clip's request as JSON, the clip and a reference photo beside it.
    with gr.Row(visible=False):
        api_clip = gr.File(type="filepath", label="clip")
        api_request = gr.Textbox(label="the clip's swap as JSON: see ClipRequest (files are uploaded beside it)")
        api_reference = gr.File(type="filepath", label="photo of the person to follow (face 'reference')")
        api_preview_button, api_run_button = gr.Button(), gr.Button()
    api_inputs = [api_clip, api_request, api_reference]
    api_preview_button.click(user_errors(handlers.api_preview), api_inputs, preview_image, api_name="video_preview")
    api_run_button.click(
        cancellable(user_errors(handlers.api_run), outputs=3),
        api_inputs,
        [result, download, message],
        api_name="swap_video",
    )
