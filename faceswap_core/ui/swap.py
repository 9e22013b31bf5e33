"""The Swap tab: upload a photo, give each face a person, touch up the mask, generate, compare, download.

This module lays the tab out and wires its events; what the events do lives on
:class:`~faceswap_core.ui.swap_handlers.SwapHandlers` (plain values in and out, settings by field name),
and each section's widgets with their handlers: the photo and its faces (``swap_photo``, ``swap_faces``),
the person section (``swap_people``), Try strengths (``swap_strengths``), the result (``swap_result``).

The page's own events that take the whole form (Generate, Try strengths, the mask and face controls) are
private: the page calls them, API clients do not see them. Scripts use ``/swap_request``: a
:class:`~faceswap_core.requests.SwapRequest` as JSON with its files uploaded beside it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import gradio as gr

from faceswap_core.engine import Engine
from faceswap_core.face_choice import NO_LORA
from faceswap_core.settings import (
    GUIDANCE,
    IDENTITY_SCALE,
    KEEP_EXPRESSION,
    LORA_SCALE,
    MASK_FEATHER_PX,
    MASK_GROW_PX,
    MASK_OCCLUSION,
    MAX_SEED,
    PADDING,
    STEPS,
    STRENGTH,
    SwapSettings,
)
from faceswap_core.ui import guards, newcomer
from faceswap_core.ui.common import (
    MASK_BRUSH,
    by_name,
    cancellable,
    gpu_queue,
    on_gpu,
    range_slider,
    user_errors,
)
from faceswap_core.ui.newcomer import FIRST_STEPS
from faceswap_core.ui.person_picker import NO_PHOTOS_INFO, person_choices, refresh_lora_picker
from faceswap_core.ui.progress import wire_long_request, wire_stop, with_progress_line
from faceswap_core.ui.session_keep import keep_across_reloads
from faceswap_core.ui.swap_faces import RANDOM_SEED
from faceswap_core.ui.swap_handlers import SwapHandlers
from faceswap_core.ui.swap_people import person_section
from faceswap_core.ui.swap_photo import TargetPhoto, mask_sizes
from faceswap_core.ui.swap_result import RESULT_NOTE, SHOW_RESULT, result_handle, result_tab
from faceswap_core.ui.swap_strengths import expression_strengths, strengths_panel

EDITOR_HEIGHT = 420  # px: with the bar above it, photo and Generate share one 1366x768 screen
ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLE_PHOTOS = ("astronaut.jpg",)
PAGE_ONLY = {"api_visibility": "private"}  # called by the page (and still checked: raw HTTP reaches it too)


def create_swap_tab(engine: Engine, handlers: SwapHandlers | None = None) -> gr.Dropdown:
    """Lay out the Swap tab inside the current Blocks and wire its events.

    Returns the person picker, which the Train tab refreshes when a new LoRA is saved.
    """
    handlers = handlers or SwapHandlers(engine)
    defaults = SwapSettings()
    photo = gr.State(None)
    candidate_state = gr.State([])
    with gr.Row(equal_height=False, elem_id="swap-layout"):
        with gr.Column(scale=3, min_width=320):
            with gr.Row(equal_height=True, elem_id="photo-bar"):
                upload = gr.UploadButton(
                    "📷 Upload photo",
                    file_types=["image"],
                    type="filepath",
                    variant="primary",
                    elem_id="upload",
                    min_width=140,
                )
                face = gr.Dropdown(
                    choices=[("Face 1", 0)],
                    value=0,
                    label="Face (numbered on the photo)",
                    show_label=False,  # "Face 2" says it; a label would make the whole bar two lines tall
                    elem_id="face-index",
                    interactive=False,
                    allow_custom_value=True,  # the choices follow the photo; the handlers check the index
                    min_width=140,
                )
                auto = gr.Button("Auto mask", elem_id="auto-mask", min_width=100)
                example = gr.Button(  # the example photo without scrolling to find it
                    "Example",
                    elem_id="example-photo",
                    min_width=90,
                    visible=any((ASSETS / name).is_file() for name in EXAMPLE_PHOTOS),
                )
            with gr.Tabs(selected="mask", elem_id="views") as views:
                with gr.Tab("Photo and mask", id="mask"):
                    editor = gr.ImageEditor(
                        label="The blue paint marks what gets replaced",
                        show_label=False,  # the note under it says so; a floating label sits under the zoom bar
                        type="pil",
                        image_mode="RGBA",
                        format="png",
                        sources=(),  # photos come through the Upload button: the editor fires "upload" when a
                        # handler sets its background too, which would reload the numbered copy as the photo
                        brush=MASK_BRUSH,
                        eraser=gr.Eraser(),
                        layers=False,
                        transforms=(),
                        canvas_size=(
                            32,
                            32,
                        ),  # the canvas takes the photo's size; a larger start size shifts set layers
                        height=EDITOR_HEIGHT,
                        elem_id="target",
                    )
                    guards.safe_editor(editor)  # images refused from their header before Gradio decodes them
                with gr.Tab("Result", id="result"):
                    view = result_tab(EDITOR_HEIGHT)
            mask_note = gr.Markdown(FIRST_STEPS, elem_id="mask-note")
            examples = [[str(ASSETS / name)] for name in EXAMPLE_PHOTOS if (ASSETS / name).is_file()]
        with gr.Column(scale=2, min_width=300, elem_id="swap-controls"):
            with gr.Row(equal_height=True):
                person = gr.Dropdown(
                    choices=person_choices(engine),
                    value=NO_LORA,
                    label="Person for face 1",
                    elem_id="lora",
                    allow_custom_value=True,  # the choices grow as people are added; the people folder checks names
                    scale=4,
                )
                refresh = gr.Button("↻", size="sm", scale=0, min_width=40, elem_id="lora-refresh")
            lora_info = gr.Markdown(elem_id="lora-info")
            people = person_section()
            with gr.Row():  # the two controls of how much changes, side by side and always in view
                strength = range_slider(
                    STRENGTH,
                    label="Strength",
                    info="Low: the photo; high: the person",
                    elem_id="strength",
                )
                likeness = range_slider(
                    IDENTITY_SCALE,
                    value=0.0,
                    label="Likeness from photos",
                    info=NO_PHOTOS_INFO,
                    interactive=False,
                    elem_id="likeness",
                )
            with gr.Row():
                prompt = gr.Textbox(
                    value="",
                    label="Prompt",
                    placeholder=defaults.prompt,
                    lines=1,
                    info="Describe the photo, not the face",
                    elem_id="prompt",
                    scale=3,
                )
                padding = range_slider(
                    PADDING, label="Context", info="Photo around the face", elem_id="context", scale=2
                )
            with gr.Row(equal_height=True, elem_id="generate-bar"):
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=2, min_width=100)
                search = gr.Button("Try strengths", elem_id="try-strengths", scale=2, min_width=100)
                stop = gr.Button("Stop", variant="stop", visible=False, elem_id="stop", scale=4, min_width=100)
                fast = gr.Checkbox(
                    value=False,
                    label="Fast",
                    info="~4 steps",  # and no negative prompt: said in the Advanced accordion
                    elem_id="fast",
                    scale=1,
                    min_width=70,
                )
            download = gr.DownloadButton("Download full-size PNG", visible=False, elem_id="download")
            everyone = gr.Button("Same person for every face", size="sm", visible=True, elem_id="same-for-all")
            summary = gr.Markdown(elem_id="face-summary")
            with gr.Accordion("Mask size", open=False, elem_id="mask-size"):
                size_from_face = gr.Checkbox(
                    value=True, label="Size the mask from the face", elem_id="mask-size-from-face"
                )
                with gr.Row():
                    grow = range_slider(MASK_GROW_PX, label="Grow (px)", info="Then press Auto mask", elem_id="grow")
                    feather = range_slider(
                        MASK_FEATHER_PX, label="Feather (px)", info="Soft edge width", elem_id="feather"
                    )
                occlusion = gr.Checkbox(
                    value=MASK_OCCLUSION,
                    label="Leave out hands and things in front of the face",
                    info="Then press Auto mask",
                    elem_id="mask-occlusion",
                )
            strengths = strengths_panel()
            with gr.Accordion("Pose and expression", open=False, elem_id="expression-panel"):
                with gr.Row():
                    keep_expression_on = gr.Checkbox(
                        value=False,
                        label="Keep expression",
                        info="A ControlNet holds the photo's pose and expression, so strength can go high",
                        elem_id="keep-expression",
                    )
                    keep_expression = range_slider(KEEP_EXPRESSION, label="Weight", elem_id="keep-expression-weight")
                dynamic_strength = gr.Checkbox(
                    value=False,
                    label="More strength for small faces",
                    info="Adds up to +0.2 by face size (as ADetailer)",
                    elem_id="dynamic-strength",
                )
            with gr.Accordion("Advanced", open=False):
                lora_scale = range_slider(
                    LORA_SCALE, label="Trained person's weight", info="LoRA scale: 1 as trained", elem_id="lora-scale"
                )
                negative = gr.Textbox(
                    value=defaults.negative_prompt,
                    label="Negative prompt",
                    info="Not used in Fast mode",
                    lines=2,
                )
                steps = range_slider(STEPS, label="Steps", info=newcomer.STEPS_INFO, elem_id="steps")
                guidance = range_slider(GUIDANCE, label="Guidance", info=newcomer.GUIDANCE_INFO, elem_id="guidance")
                with gr.Row(equal_height=True):
                    seed = gr.Number(
                        value=RANDOM_SEED,
                        precision=0,
                        minimum=RANDOM_SEED,
                        maximum=MAX_SEED,
                        label="Seed",
                        info="-1: random",
                        elem_id="seed",
                        scale=3,
                    )
                    guards.safe_number(seed, "seed")
                    dice = gr.Button("🎲", size="sm", scale=0, min_width=40, elem_id="dice")
                color_match = gr.Checkbox(value=defaults.color_match, label="Match the colours of the surroundings")
            with gr.Accordion("Parameters of this result", open=False):
                record = gr.JSON(label="Saved in the PNG as text", elem_id="record")

    shown = [photo, editor, face, summary, mask_note]

    def after_load(photo: TargetPhoto | None) -> tuple[Any, ...]:
        """The mask sliders at the sizes used, and the photo in view (not the last photo's result)."""
        return (*mask_sizes(photo), gr.Tabs(selected="mask"))

    # Every event that decodes an image (the editor's, a photo) goes through the queue, at most 4 at once.
    on_faces = {"show_progress_on": [mask_note], "concurrency_id": "faces", "concurrency_limit": 4}
    quiet = {"show_progress": "hidden", "concurrency_id": "faces", "concurrency_limit": 4}  # small, frequent ones
    off_editor = {"show_progress": "hidden", "show_progress_on": [mask_note]}  # see progress's module doc
    controls = [person, strength, prompt, likeness]
    loads = [upload.upload(handlers.load_photo, [upload, *controls], shown, **on_faces)]
    if examples:

        def load_example(*controls: Any) -> tuple[Any, ...]:
            return handlers.load_photo(examples[0][0], *controls)

        loads.append(example.click(load_example, controls, shown, **on_faces))
        # not gr.Examples: it sets the photo into the editor, then sends it back from there (an upload)
        gallery = gr.Dataset(
            components=[gr.Image(visible=False)],
            samples=examples,
            type="index",
            label="Example photo (NASA, public domain): click it, then Generate",
        )

        @user_errors
        def load_chosen(index: Any, *controls: Any) -> tuple[Any, ...]:
            """The example photo clicked (by its index in the list, checked: a public endpoint)."""
            chosen = int(guards.number(index, "example", integer=True))
            if not 0 <= chosen < len(examples):
                raise gr.Error("There is no such example photo.")
            return handlers.load_photo(examples[chosen][0], *controls)

        loads.append(gallery.click(load_chosen, [gallery, *controls], shown, **on_faces, **PAGE_ONLY))
    results = [view.comparison, download, record, view.candidates]  # the last photo's: gone with it

    def no_result() -> tuple[Any, ...]:
        return None, gr.DownloadButton(visible=False), None, gr.Gallery(value=None, visible=False)

    for loaded in loads:
        loaded.success(after_load, photo, [grow, feather, views], queue=False, **off_editor)
        loaded.success(lambda: gr.Button(visible=False), None, example, queue=False)  # room for the face picker
        loaded.success(no_result, None, results, queue=False, **off_editor)

    mask_fields = {
        "photo": photo,
        "editor": editor,
        "face": face,
        "person": person,
        "strength": strength,
        "prompt": prompt,
        "likeness": likeness,
        "references": people.references,
        "size_from_face": size_from_face,
        "occlusion": occlusion,
        "grow": grow,
        "feather": feather,
    }
    form = set(mask_fields.values())
    auto.click(by_name(handlers.auto_mask, mask_fields), form, [editor, mask_note], **on_faces, **PAGE_ONLY)
    kept_after = [*loads]  # the events whose outcome a reload brings back (see session_keep)
    kept_after.append(
        face.input(
            handlers.choose_face, [photo, face, people.references], [person, strength, prompt, likeness], queue=False
        )
    )
    assigned = [photo, editor, summary, mask_note, likeness]
    kept_after.append(person.input(by_name(handlers.assign, mask_fields), form, assigned, **on_faces, **PAGE_ONLY))
    # the photos' own fields only: an event that takes the editor makes the page upload the photo again
    photos_fields = {"photo": photo, "face": face, "person": person, "references": people.references}
    for event in (people.references.upload, people.references.clear, people.references.delete):  # not .change:
        # Add empties the upload itself, and then sets the slider for the new person
        event(
            by_name(handlers.photos_changed, photos_fields),
            set(photos_fields.values()),
            [photo, likeness, summary],
            **quiet,
            **PAGE_ONLY,
        )
    add_fields = {**mask_fields, "new_name": people.new_name, "new_class_word": people.new_class_word}
    add_outputs = [person, *assigned, people.note, people.references, people.new_name]
    added = people.add.click(
        by_name(handlers.add_person, add_fields),
        set(add_fields.values()),
        add_outputs,
        api_name="add_person_to_photo",  # private; the name keeps "add_person" for the public one below
        show_progress_on=[people.note],
        concurrency_id="faces",
        concurrency_limit=4,
        **PAGE_ONLY,
    )
    short = {"new_name": people.new_name, "references": people.references, "new_class_word": people.new_class_word}
    gr.Button(visible=False).click(  # the public /add_person: three inputs, not the page's whole form
        by_name(handlers.api_add_person, short),
        set(short.values()),
        [person, people.note],
        api_name="add_person",
        concurrency_id="faces",
        concurrency_limit=4,
    )
    added.success(newcomer.person_added, None, people.accordion, queue=False)
    kept_after.append(added)
    for control in (strength, prompt, likeness):
        updated = control.input(
            by_name(handlers.update_choice, mask_fields), form, [photo, summary], **quiet, **PAGE_ONLY
        )
        kept_after.append(updated)
    everyone_event = everyone.click(
        by_name(handlers.same_for_everyone, mask_fields),
        form,
        [photo, editor, summary, mask_note],
        **on_faces,
        **PAGE_ONLY,
    )
    for slider in (grow, feather):
        slider.input(lambda: False, None, size_from_face, queue=False)
    refresh.click(lambda current: refresh_lora_picker(engine, current), person, person, queue=False)
    person.change(handlers.describe_lora, person, [lora_info, prompt], queue=False)
    dice.click(lambda: random.randint(0, MAX_SEED), None, seed, queue=False)
    keep_expression_on.input(expression_strengths, keep_expression_on, [strength, strengths], queue=False)
    fast.change(newcomer.fast_truth, fast, [steps, guidance], queue=False)

    swap_fields = {
        **mask_fields,
        "lora_scale": lora_scale,
        "negative": negative,
        "padding": padding,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "color_match": color_match,
        "fast": fast,
        "keep_expression_on": keep_expression_on,
        "keep_expression": keep_expression,
        "dynamic_strength": dynamic_strength,
        "strengths": strengths,
    }
    outputs = [view.comparison, download, record, view.candidates, candidate_state, views]
    gpu = gpu_queue(engine)
    by_stop = gr.Checkbox(False, visible=False)  # ticked by Stop in the page: a stop is not a refusal
    line = view.progress_line
    long = {"views": views, "buttons": [generate, search], "stop": stop, "line": line, "by_stop": by_stop, **gpu}
    requests = [
        wire_long_request(
            button,
            on_gpu(with_progress_line(cancellable(by_name(run, swap_fields, progress=True), outputs=len(outputs)))),
            inputs=set(swap_fields.values()),
            outputs=[*outputs, view.progress_line],
            show_progress="hidden",  # the progress line says it, in words
            api_name=api_name,
            **long,
            **PAGE_ONLY,
        )
        for button, run, api_name in (
            (generate, handlers.generate, "generate"),
            (search, handlers.try_strengths, "try_strengths"),
        )
    ]
    for request in requests:
        request.success(result_handle, photo, view.comparison, queue=False, **off_editor)
        request.success(None, js=SHOW_RESULT)
        request.success(lambda: RESULT_NOTE, None, mask_note, queue=False)  # not "touch it up" under a result
    wire_stop(stop, requests, buttons=[generate, search], line=line, by_stop=by_stop)
    chosen = view.candidates.select(
        handlers.show_candidate,
        [photo, candidate_state],
        [view.comparison, download, record, strength, summary],
        **quiet,
    )
    chosen.success(result_handle, photo, view.comparison, queue=False, **off_editor)
    kept_after += [everyone_event, *requests, chosen]
    kept = {"person": person, "photo": photo, "editor": editor, "face": face, "summary": summary}
    kept.update(mask_note=mask_note, strength=strength, prompt=prompt, likeness=likeness, result=view.comparison)
    kept.update(download=download, record=record, views=views, example=example)
    section = (lambda: newcomer.person_section(handlers.people), people.accordion)  # nobody to pick yet: open
    keep_across_reloads(handlers, kept, kept_after, on_load=[section])

    # The API for scripts (gradio_client): a request as JSON, its files uploaded beside it; no canvas involved.
    with gr.Row(visible=False):
        api_request = gr.Textbox(label="the swap as JSON: see SwapRequest (files are uploaded beside it)")
        api_image = gr.File(type="filepath", label="target image")
        api_mask = gr.File(type="filepath", label="mask (white = replace; optional)")
        api_photos = gr.File(
            file_count="multiple", type="filepath", label="photos of the person (optional; for a person without any)"
        )
        api_reference = gr.File(type="filepath", label="photo of the person to find (face 'reference')")
        api_out = gr.Image(type="filepath", format="png", label="result")
        api_button = gr.Button()
    api_button.click(
        on_gpu(cancellable(handlers.api_request, outputs=2)),
        [api_request, api_image, api_mask, api_photos, api_reference],
        [api_out, record],
        api_name="swap_request",
        **gpu,
    )
    return person
