"""The Swap tab: mark the face on the target photo, pick the person's LoRA, generate, compare, download.

The handlers live on :class:`SwapHandlers` (plain Python in, plain values out) so tests can call them
without a browser; :func:`create_swap_tab` only lays out components and wires events. GPU work
(generate, try strengths, the API) shares the queue's "gpu" concurrency group with training, limit 1.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from faceswap_core.captions import template_caption
from faceswap_core.engine import Engine, SwapResult
from faceswap_core.errors import FaceswapError, SettingsError
from faceswap_core.images import check_header, load_image
from faceswap_core.loras import reference_photos
from faceswap_core.settings import (
    CLASS_WORDS,
    DEFAULT_NEGATIVE_PROMPT,
    GUIDANCE,
    LORA_SCALE,
    MASK_FEATHER_FRACTION,
    MASK_FEATHER_PX,
    MASK_GROW_FRACTION,
    MASK_GROW_PX,
    MAX_REFERENCE_PHOTOS,
    MAX_SEED,
    PADDING,
    SEARCH_STRENGTHS,
    STEPS,
    STRENGTH,
    MaskSettings,
    Range,
    SwapSettings,
)
from faceswap_core.ui import guards
from faceswap_core.ui.common import (
    MASK_BRUSH,
    ResultFiles,
    cancellable,
    current_cancel,
    editor_image,
    editor_mask,
    editor_value,
    on_gpu,
    range_slider,
    user_errors,
)

NO_LORA = ""  # the picker's value for "base model only"
NO_FACE_NOTE = "Paint over the area to replace with the brush, then press **Generate**."
MASK_NOTE = "Press **Auto mask** to cover it, then touch up with the brush and eraser."
RANDOM_SEED = -1
SEED = Range(RANDOM_SEED, MAX_SEED, RANDOM_SEED, 1)  # -1: a new random seed each time
FACE_INDEX = Range(0, 99, 0, 1)
THUMBNAIL_SIZE = 128
ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLE_PHOTOS = ("astronaut.jpg",)


def lora_choices(engine: Engine) -> list[tuple[str, str]]:
    """The picker's entries: "none" first, then every LoRA and checkpoint the registry finds now."""
    return [("None (base model only)", NO_LORA)] + [(name, name) for name in engine.loras.names()]


def refresh_lora_picker(engine: Engine, current: str | None = NO_LORA, select: str | None = None) -> dict[str, Any]:
    """Re-read the LoRA folder (new training shows up without a restart); keep the choice if it still exists."""
    choices = lora_choices(engine)
    values = {value for _, value in choices}
    wanted = select if select in values else current if current in values else NO_LORA
    return gr.Dropdown(choices=choices, value=wanted)


def _seed(value: float | None) -> int | None:
    """The seed box: -1 (or empty) means a new random seed each time."""
    if value is None:
        return None
    seed = int(guards.number(value, "seed", SEED, integer=True))
    return None if seed < 0 else seed


def _face_index(value: Any) -> int:
    return 0 if value is None else int(guards.number(value, "face index", FACE_INDEX, integer=True))


def _face_thumbnail(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    x0, y0, x1, y1 = box
    margin = 0.3 * max(x1 - x0, y1 - y0)
    crop = image.crop((int(x0 - margin), int(y0 - margin), int(x1 + margin), int(y1 + margin)))
    crop.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return crop


def _progress_callback(progress: gr.Progress | None, what: str) -> Any:
    if progress is None:
        return None
    return lambda step, total: progress((step, total), desc=what, unit="steps")


class SwapHandlers:
    """What the Swap tab's buttons do, in terms of the engine and the face toolkit."""

    def __init__(self, engine: Engine, files: ResultFiles | None = None) -> None:
        self.engine = engine
        self.files = files or ResultFiles()

    # --- the mask -------------------------------------------------------------------------------
    @staticmethod
    def _face_choices(image: Image.Image | None, faces: list[Any], index: int) -> tuple[Any, Any]:
        """The face picker and, when there are several faces, their thumbnails."""
        if image is None or not faces:
            return gr.Dropdown(choices=[("Largest face", 0)], value=0), gr.Gallery(value=None, visible=False)
        labels = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(faces))]
        thumbnails = [(_face_thumbnail(image, face.box), label) for face, (label, _) in zip(faces, labels, strict=True)]
        return (
            gr.Dropdown(choices=labels, value=index),
            gr.Gallery(value=thumbnails, visible=len(faces) > 1, selected_index=None),
        )

    @user_errors
    def find_faces(self, value: dict[str, Any] | None) -> tuple[Any, Any, str]:
        """For a chosen example: list the faces (thumbnails when there are several) and say what to do next."""
        from faceswap_core.faces.detect import detect_faces

        image = editor_image(value)
        if image is None:
            return *self._face_choices(None, [], 0), ""
        faces = detect_faces(image, name="target photo")
        if not faces:
            return *self._face_choices(image, [], 0), NO_FACE_NOTE
        count = "1 face found." if len(faces) == 1 else f"{len(faces)} faces found: click the one to replace."
        return *self._face_choices(image, faces, 0), f"{count} {MASK_NOTE}"

    @staticmethod
    def auto_mask_sizes(face: Any) -> tuple[int, int]:
        """Grow and feather (px) that scale with the face, as the library's automatic mask does."""
        width = max(face.jaw_width, face.width)
        grow = round(MASK_GROW_FRACTION * width)
        feather = round(MASK_FEATHER_FRACTION * width)
        return (
            int(min(max(grow, MASK_GROW_PX.minimum), MASK_GROW_PX.maximum)),
            int(min(max(feather, MASK_FEATHER_PX.minimum), MASK_FEATHER_PX.maximum)),
        )

    @user_errors
    def auto_mask(
        self, value: dict[str, Any] | None, face_index: int | None, size_from_face: bool, grow: float, feather: float
    ) -> tuple[dict[str, Any], Any, Any, float, float, str]:
        """Fill the editable layer with the landmark mask of the chosen face (detecting the faces again).

        Returns the editor value, the face picker and thumbnails, the grow/feather used, and a note.
        """
        from faceswap_core.faces.detect import detect_faces
        from faceswap_core.faces.masks import face_mask

        index = _face_index(face_index)
        grow = guards.number(grow, "grow", MASK_GROW_PX)
        feather = guards.number(feather, "feather", MASK_FEATHER_PX)
        image = editor_image(value)
        if image is None:
            raise gr.Error("Upload a target photo first (or click the example below).")
        faces = detect_faces(image, name="target photo")
        if not faces:
            raise gr.Error(f"target photo: no face found. {NO_FACE_NOTE}")
        if index >= len(faces):
            index = 0
        face = faces[index]
        if size_from_face:
            grow, feather = self.auto_mask_sizes(face)
        MaskSettings(grow=grow, feather=feather).validate()
        mask = face_mask(image.size, face, grow=grow, feather=feather)
        count = "1 face found." if len(faces) == 1 else f"{len(faces)} faces found; face {index + 1} is masked."
        return (
            editor_value(image, mask),
            *self._face_choices(image, faces, index),
            grow,
            feather,
            f"{count} Touch up the blue mask with the brush and eraser, then press **Generate**.",
        )

    @staticmethod
    def pick_face(event: gr.SelectData) -> int:
        return int(event.index)

    # --- the LoRA -------------------------------------------------------------------------------
    def describe_lora(self, name: str | None, prompt: str) -> tuple[str, str]:
        """What is known about the chosen LoRA; the default prompt follows its class word."""
        try:
            prompt = guards.text(prompt, "prompt")
            info = guards.lora(self.engine.loras, name)
        except FaceswapError as err:
            return f"⚠️ {guards.public_message(str(err))}", prompt or ""
        if info is None:
            return "", prompt
        meta = info.metadata
        facts = []
        if meta.get("class_word"):
            facts.append(f"a {meta['class_word']}")
        if meta.get("reference_photos"):
            facts.append(f"{len(meta['reference_photos'])} photos")
        step = meta.get("checkpoint_step") or meta.get("steps_done")
        if step:
            facts.append(f"step {step}")
        base = meta.get("base_model")
        warning = ""
        if base and base != self.engine.base_model:
            trained_on, loaded = guards.public_message(str(base)), guards.public_message(self.engine.base_model)
            warning = f" ⚠️ trained on `{trained_on}`, not on the loaded `{loaded}`"
        text = f"**{info.name}**" + (f": {', '.join(facts)}" if facts else "") + warning
        templates = {template_caption(word) for word in CLASS_WORDS}
        class_word = meta.get("class_word")
        if class_word and prompt.strip() in templates | {""}:
            prompt = template_caption(class_word)
        return text, prompt

    # --- generating -----------------------------------------------------------------------------
    def _settings(
        self,
        lora: str | None,
        lora_scale: float,
        prompt: str,
        negative: str,
        strength: float,
        padding: float,
        steps: float,
        guidance: float,
        seed: float | None,
        face_index: int | None,
        color_match: bool = True,
    ) -> SwapSettings:
        info = guards.lora(self.engine.loras, lora)  # a name from the registry, never a path
        settings = SwapSettings(
            prompt=guards.text(prompt, "prompt").strip() or SwapSettings().prompt,
            negative_prompt=guards.text(negative, "negative prompt").strip(),
            strength=guards.number(strength, "strength", STRENGTH),
            padding=guards.number(padding, "padding", PADDING),
            steps=int(guards.number(steps, "steps", STEPS, integer=True)),
            guidance=guards.number(guidance, "guidance", GUIDANCE),
            seed=_seed(seed),
            lora=info.name if info else None,
            lora_scale=guards.number(lora_scale, "LoRA strength", LORA_SCALE),
            face_index=_face_index(face_index),
            color_match=bool(color_match),
        )
        settings.validate()
        return settings

    def _target(
        self, value: dict[str, Any] | None, size_from_face: bool, grow: float, feather: float
    ) -> tuple[Image.Image, Any, Any]:
        """The photo and the painted mask; with nothing painted, the automatic mask's grow/feather."""
        grow = guards.number(grow, "grow", MASK_GROW_PX)
        feather = guards.number(feather, "feather", MASK_FEATHER_PX)
        image = editor_image(value)
        if image is None:
            raise gr.Error("Upload a target photo first (or click the example below).")
        mask = editor_mask(value)
        if mask is not None:
            mask_settings = None
        elif size_from_face:
            mask_settings = MaskSettings()
        else:
            mask_settings = MaskSettings(grow=grow, feather=feather)
        return image, mask, mask_settings

    @user_errors
    def generate(
        self,
        value: dict[str, Any] | None,
        face_index: int,
        size_from_face: bool,
        grow: float,
        feather: float,
        lora: str,
        lora_scale: float,
        prompt: str,
        negative: str,
        strength: float,
        padding: float,
        steps: float,
        guidance: float,
        seed: float | None,
        color_match: bool,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[tuple[Image.Image, Image.Image], Any, dict[str, Any]]:
        """One swap with the painted mask (or the automatic one when nothing is painted)."""
        image, mask, mask_settings = self._target(value, size_from_face, grow, feather)
        settings = self._settings(
            lora, lora_scale, prompt, negative, strength, padding, steps, guidance, seed, face_index, color_match
        )
        result = self.engine.swap(
            image,
            mask=mask,
            settings=settings,
            mask_settings=mask_settings,
            progress=_progress_callback(progress, "Generating"),
            cancel=current_cancel(),
        )
        return self._show(image, result)

    def _show(self, before: Image.Image, result: SwapResult) -> tuple[tuple[Image.Image, Image.Image], Any, dict]:
        record = guards.public_record(result.record)
        path = self.files.save(result.image, record)
        width, height = result.image.size
        button = gr.DownloadButton(f"Download full-size PNG ({width}×{height})", value=str(path), visible=True)
        return (before, result.image), button, record

    @user_errors
    def try_strengths(
        self,
        value: dict[str, Any] | None,
        face_index: int,
        size_from_face: bool,
        grow: float,
        feather: float,
        lora: str,
        lora_scale: float,
        prompt: str,
        negative: str,
        padding: float,
        steps: float,
        guidance: float,
        seed: float | None,
        color_match: bool,
        strengths_text: str,
        references: list[str] | None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[str, str]], list[dict[str, Any]], str, Any, Any, Any]:
        """Several strengths with one seed, ranked by identity distance to photos of the person."""
        image, mask, mask_settings = self._target(value, size_from_face, grow, feather)
        strengths = parse_strengths(strengths_text)
        settings = self._settings(
            lora, lora_scale, prompt, negative, strengths[0], padding, steps, guidance, seed, face_index, color_match
        )
        photos, source = self.reference_photos(references, settings.lora)
        results = self.engine.search(
            image,
            mask=mask,
            settings=settings,
            strengths=strengths,
            references=photos or None,
            mask_settings=mask_settings,
            progress=_progress_callback(progress, "Trying strengths"),
            cancel=current_cancel(),
        )
        candidates = []
        for result in results:
            record = guards.public_record(result.record)
            path = self.files.save(result.image, record, stem="candidate")
            candidates.append({"path": str(path), "record": record, "caption": candidate_caption(result)})
        if photos:
            note = f"Ranked best first by identity distance to {len(photos)} {source} (lower = more alike)."
        else:
            note = (
                "Not ranked: add photos of the person under *Reference photos* (or pick a LoRA trained here) "
                "to sort the candidates by likeness."
            )
        gallery = [(c["path"], c["caption"]) for c in candidates]
        slider, button, record = self._show(image, results[0])
        return gallery, candidates, note, slider, button, record

    def reference_photos(self, uploaded: list[str] | None, lora: str | None) -> tuple[list[str], str]:
        """Uploaded photos of the person, else the LoRA's own training photos when its metadata lists them."""
        if uploaded:
            if not isinstance(uploaded, list) or len(uploaded) > MAX_REFERENCE_PHOTOS:
                raise SettingsError(f"give at most {MAX_REFERENCE_PHOTOS} reference photos")
            # each one is refused from its header by load_image, before it is decoded
            return [str(p) for p in uploaded], "uploaded reference photos"
        if lora:
            try:
                info = guards.lora(self.engine.loras, lora)
            except FaceswapError:
                info = None
            found = [str(p) for p in reference_photos(info)[:MAX_REFERENCE_PHOTOS]] if info else []
            if found:
                return found, "training photos of the LoRA"
        return [], ""

    def show_candidate(
        self, value: dict[str, Any] | None, candidates: list[dict[str, Any]], event: gr.SelectData
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Clicking a candidate makes it the result (comparison, download, parameters)."""
        index = event.index if isinstance(event.index, int) else -1
        if not candidates or not 0 <= index < len(candidates):
            raise gr.Error("Pick one of the candidates shown (try strengths first).", print_exception=False)
        chosen = candidates[index]
        before = editor_image(value)
        after = load_image(chosen["path"], name="candidate")
        if before is None or before.size != after.size:
            before = after
        button = gr.DownloadButton(f"Download full-size PNG ({after.width}×{after.height})", value=chosen["path"])
        return (before, after), button, chosen["record"]

    # --- the API --------------------------------------------------------------------------------
    @user_errors
    def api_swap(
        self,
        image: str,
        mask: str | None,
        lora: str,
        lora_scale: float,
        prompt: str,
        strength: float,
        padding: float,
        steps: float,
        guidance: float,
        seed: float | None,
        face_index: float | None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict[str, Any]]:
        """For scripts: a target image file and an optional mask file (white = replace) in, a PNG out."""
        if not image:
            raise gr.Error("no target image was sent")
        settings = self._settings(
            lora, lora_scale, prompt, DEFAULT_NEGATIVE_PROMPT, strength, padding, steps, guidance, seed, face_index
        )
        check_header(str(image), name="target image")  # refused from its header, before anything decodes it
        if mask:
            check_header(str(mask), name="mask")
        result = self.engine.swap(
            image,
            mask=mask or None,
            settings=settings,
            progress=_progress_callback(progress, "Generating"),
            cancel=current_cancel(),
        )
        record = guards.public_record(result.record)
        return str(self.files.save(result.image, record)), record


def parse_strengths(text: str) -> list[float]:
    """``"0.3, 0.4 0.5"`` -> [0.3, 0.4, 0.5]; each must be a valid strength."""
    parts = [p for p in guards.text(text, "strengths").replace(",", " ").split() if p]
    if not parts:
        return list(SEARCH_STRENGTHS)
    guards.strength_count(len(parts))  # before any work: each one is a full swap
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise SettingsError(f"strengths: {part[:20]!r} is not a number; write them like 0.3, 0.4, 0.5") from None
        values.append(guards.number(value, "strength", STRENGTH))
    return values


def candidate_caption(result: SwapResult) -> str:
    strength = result.record["settings"]["strength"]
    if result.identity_distance is None:
        return f"strength {strength:.2f}" + (" · no face found" if "identity_distance" in result.record else "")
    return f"strength {strength:.2f} · distance {result.identity_distance:.3f}"


def create_swap_tab(engine: Engine, handlers: SwapHandlers | None = None) -> gr.Dropdown:
    """Lay out the Swap tab inside the current Blocks and wire its events.

    Returns the LoRA picker, which the Train tab refreshes when a new LoRA is saved.
    """
    handlers = handlers or SwapHandlers(engine)
    defaults = SwapSettings()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            editor = gr.ImageEditor(
                label="Target photo: the blue paint marks what gets replaced",
                type="pil",
                image_mode="RGBA",
                format="png",
                sources=("upload", "clipboard"),
                brush=MASK_BRUSH,
                eraser=gr.Eraser(),
                layers=False,
                transforms=(),
                canvas_size=(32, 32),  # the canvas takes the photo's size; a larger start size shifts set layers
                height=560,
                placeholder="# Drop the photo with the face to replace\nor click to upload, or use the example below",
                elem_id="target",
            )
            guards.safe_editor(editor)  # images refused from their header before Gradio decodes them
            mask_note = gr.Markdown(
                "Upload a photo, then press **Auto mask** to cover the face, or paint over it.", elem_id="mask-note"
            )
            with gr.Row():
                auto = gr.Button("Auto mask", variant="secondary", elem_id="auto-mask", scale=1)
                face = gr.Dropdown(
                    choices=[("Largest face", 0)], value=0, label="Face", elem_id="face-index", scale=1, min_width=120
                )
            faces = gr.Gallery(
                label="Faces found: click the one to replace",
                visible=False,
                columns=8,
                height=150,
                allow_preview=False,
                object_fit="contain",
                elem_id="faces",
            )
            with gr.Row():
                size_from_face = gr.Checkbox(
                    value=True,
                    label="Size the mask from the face",
                    info="Untick to set grow and feather yourself",
                    elem_id="mask-size-from-face",
                    scale=1,
                )
                grow = range_slider(
                    MASK_GROW_PX,
                    label="Grow mask (px)",
                    info="Press Auto mask to apply",
                    scale=2,
                )
                feather = range_slider(
                    MASK_FEATHER_PX,
                    label="Feather edge (px)",
                    info="Soft edge width",
                    scale=2,
                )
            examples = [[str(ASSETS / name)] for name in EXAMPLE_PHOTOS if (ASSETS / name).is_file()]
            if examples:
                gr.Examples(
                    examples,
                    inputs=[editor],
                    outputs=[face, faces, mask_note],
                    fn=handlers.find_faces,
                    run_on_click=True,
                    label="Example photo (NASA, public domain): click it, then Auto mask and Generate",
                )
        with gr.Column(scale=2):
            with gr.Row(equal_height=False):
                lora = gr.Dropdown(
                    choices=lora_choices(engine),
                    value=NO_LORA,
                    label="Person (LoRA)",
                    info="Train one in the Train tab, or put weights in the LoRA folder",
                    elem_id="lora",
                    allow_custom_value=True,  # the choices change as LoRAs are trained; the registry checks names
                    scale=4,
                )
                refresh = gr.Button("↻ Refresh", size="sm", scale=1, min_width=80, elem_id="lora-refresh")
            lora_info = gr.Markdown(elem_id="lora-info")
            lora_scale = range_slider(
                LORA_SCALE,
                label="LoRA strength",
            )
            prompt = gr.Textbox(
                value=defaults.prompt,
                label="Prompt",
                info="Describe the photo, not the face: the LoRA brings the face",
                lines=2,
                elem_id="prompt",
            )
            strength = range_slider(
                STRENGTH,
                label="Strength",
                info="How much of the old face may change: low keeps pose and light, high follows the LoRA",
                elem_id="strength",
            )
            padding = range_slider(
                PADDING,
                label="Context around the face",
                info="How much surrounding photo the model sees, as a fraction of the face size",
            )
            with gr.Accordion("Advanced", open=False):
                negative = gr.Textbox(value=defaults.negative_prompt, label="Negative prompt", lines=2)
                steps = range_slider(STEPS, label="Steps")
                guidance = range_slider(GUIDANCE, label="Guidance")
                with gr.Row(equal_height=True):
                    seed = gr.Number(
                        value=RANDOM_SEED,
                        precision=0,
                        minimum=RANDOM_SEED,
                        maximum=MAX_SEED,
                        label="Seed",
                        info="-1: a new random seed each time",
                        elem_id="seed",
                        scale=3,
                    )
                    guards.safe_number(seed, "seed")
                    dice = gr.Button("🎲 Random", size="sm", scale=1, min_width=80)
                color_match = gr.Checkbox(value=defaults.color_match, label="Match the colours of the surroundings")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=2)
                search = gr.Button("Try strengths", variant="secondary", elem_id="try-strengths", scale=1)
            result = gr.ImageSlider(label="Before / after: drag the handle", type="pil", elem_id="result")
            download = gr.DownloadButton("Download full-size PNG", visible=False, elem_id="download")
            with gr.Accordion("Parameters of this result", open=False):
                record = gr.JSON(label="Saved in the PNG as text", elem_id="record")
    with gr.Accordion("Try strengths: candidates ranked by likeness", open=False, elem_id="strengths-panel"):
        gr.Markdown(
            "Generates one candidate per strength with the same seed. With photos of the person (uploaded "
            "here, or the training photos of a LoRA trained in this app) they are ranked best first."
        )
        with gr.Row():
            strengths = gr.Textbox(
                value=", ".join(f"{s:g}" for s in SEARCH_STRENGTHS), label="Strengths to try", scale=1
            )
            references = gr.File(
                label="Reference photos of the person (optional)",
                file_count="multiple",
                file_types=["image"],
                type="filepath",
                scale=2,
            )
        ranking_note = gr.Markdown()
        candidates = gr.Gallery(
            label="Candidates (click one to use it)", columns=4, height=300, allow_preview=False, elem_id="candidates"
        )
        candidate_state = gr.State([])

    mask_inputs = [editor, face, size_from_face, grow, feather]
    mask_outputs = [editor, face, faces, grow, feather, mask_note]
    # Progress hidden: after a handler sets the editor's layers, Gradio 6.31's editor keeps a stale
    # "queue"/"processing" overlay over the canvas, hiding the mask the user should touch up.
    auto_mask = {"concurrency_id": "faces", "concurrency_limit": 4, "show_progress": "hidden"}
    auto.click(handlers.auto_mask, mask_inputs, mask_outputs, **auto_mask)
    faces.select(handlers.pick_face, None, face, queue=False).then(
        handlers.auto_mask, mask_inputs, mask_outputs, **auto_mask
    )
    for slider in (grow, feather):
        slider.input(lambda: False, None, size_from_face, queue=False)
    refresh.click(lambda current: refresh_lora_picker(engine, current), lora, lora, queue=False)
    lora.change(handlers.describe_lora, [lora, prompt], [lora_info, prompt], queue=False)
    dice.click(lambda: random.randint(0, MAX_SEED), None, seed, queue=False)

    common = [editor, face, size_from_face, grow, feather, lora, lora_scale, prompt, negative]
    after = [padding, steps, guidance, seed, color_match]
    generate.click(
        on_gpu(cancellable(handlers.generate, outputs=3)),
        [*common, strength, *after],
        [result, download, record],
        api_name="generate",
        concurrency_id="gpu",
        concurrency_limit=1,
    )
    search.click(
        on_gpu(cancellable(handlers.try_strengths, outputs=6)),
        [*common, *after, strengths, references],
        [candidates, candidate_state, ranking_note, result, download, record],
        api_name="try_strengths",
        concurrency_id="gpu",
        concurrency_limit=1,
    )
    candidates.select(handlers.show_candidate, [editor, candidate_state], [result, download, record], queue=False)

    # A plain endpoint for scripts (gradio_client): files in, PNG out; no canvas involved.
    with gr.Row(visible=False):
        api_image = gr.File(type="filepath", label="target image")
        api_mask = gr.File(type="filepath", label="mask (white = replace; optional)")
        api_lora = gr.Textbox(label="LoRA name (as listed in the app); empty for none")
        api_face = gr.Number(value=0, precision=0, label="face index")
        guards.safe_number(api_face, "face index")
        api_out = gr.Image(type="filepath", format="png", label="result")
        api_button = gr.Button()
    api_button.click(
        on_gpu(cancellable(handlers.api_swap, outputs=2)),
        [api_image, api_mask, api_lora, lora_scale, prompt, strength, padding, steps, guidance, seed, api_face],
        [api_out, record],
        api_name="swap",
        concurrency_id="gpu",
        concurrency_limit=1,
    )
    return lora
