"""The Train tab: photos of the person -> aligned crops with editable captions -> a LoRA, with live progress.

Training runs as a :class:`~faceswap_core.training.jobs.TrainingJob` in its own thread, beside the swaps
(its own queue slot; with ``exclusive_training`` inside ``Engine.parked()``, where swaps wait). The event handler
only reads the job's reports, with a timeout, and streams them to the page; it never waits for the
thread, so no page load or other request ever waits on training. Cancel sets the run's event and
the trainer stops after the current step (or photo, while encoding), keeping a loadable checkpoint.

A run whose page goes away (tab closed, client dropped) is stopped the same way, at once: on a
public server nobody may hold the GPU without watching, and the checkpoint saved on stopping is in
the picker. When a run ends, the Swap tab's LoRA picker is refreshed with the new LoRA selected.
A run that stopped before its end (a killed server, too) is resumed from its newest checkpoint, or
started over, by its owner from the "Person" picker.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from faceswap_core.dataset_file import write_metadata
from faceswap_core.engine import Engine
from faceswap_core.errors import DatasetError, FaceswapError, SettingsError
from faceswap_core.files import remove_stale
from faceswap_core.people import People, Person
from faceswap_core.requests import checked_text, json_int, json_known, json_number, json_object, parse_json
from faceswap_core.settings import (
    CLASS_WORDS,
    DEFAULT_CLASS_WORD,
    DEFAULT_VQA_MODEL,
    MAX_PROMPT_CHARS,
    MAX_TRAIN_PHOTOS,
    RESULT_MAX_AGE_S,
    TRAIN_CHECKPOINT_EVERY,
    TRAIN_LR,
    TRAIN_RANK,
    TRAIN_RESOLUTION,
    TRAIN_STEPS,
    PublicLimits,
    TrainSettings,
)
from faceswap_core.training.checkpoints import DATASET_DIR, resume_settings, stopped_at
from faceswap_core.training.jobs import DONE, TrainingJobs
from faceswap_core.ui import guards, words
from faceswap_core.ui.common import (
    HEARTBEAT_S,
    ResultFiles,
    gpu_queue,
    on_gpu,
    range_slider,
    said_in_status,
    user_errors,
)
from faceswap_core.ui.person_picker import refresh_lora_picker

CAPTION_HEADERS = ["photo", "caption", "use"]
UNLIKE_NOTE = "does not look like the others ({likeness})"
STOPPING = "Stopping… (saving the last step)"
CAPTION_ADVICE = (
    "A good caption describes what changes from photo to photo: **pose, light, expression, background, hair, "
    "clothes**. Leave out the face's own features (eyes, nose, skin, age): those are what training learns, "
    "and words that name them would take them away from it."
)
STAGE_WORDS = {
    "preparing": "Preparing the photos",
    "loading": "Loading the base model",
    "caching": "Encoding the photos once",
    "training": "Training",
    "done": "Finished",
}
NEW_PERSON = "A new person, from the photos here"
TRAIN_API_FIELDS: dict[str, Any] = {  # what ``/train``'s JSON may set, and how each is read
    "steps": json_int,
    "rank": json_int,
    "learning_rate": json_number,
    "checkpoint_every": json_int,
    "resolution": json_int,
    "class_word": lambda value, where: checked_text(value, where, max_chars=40),
}
TRAIN_GPU_SECONDS = 3600  # ZeroGPU time asked for one training run
RANK_GPU_SECONDS = 600  # 4 samples of 20 steps per checkpoint: ~8 checkpoints on one GPU


def _rows(value: Any) -> list[list[Any]]:
    """Dataframe value (pandas or list of rows) -> list of [file name, caption, use]; a row without a
    ``use`` cell (an API caller's two columns) is used."""
    if value is None:
        return []
    rows = value.values.tolist() if hasattr(value, "values") else list(value)
    return [
        [*(str(cell) if cell is not None else "" for cell in row[:2]), _ticked(row[2] if len(row) > 2 else True)]
        for row in rows
        if row and row[0]
    ]


def _ticked(cell: Any) -> bool:
    """A checkbox cell: booleans from the page, "true"/"false" from an API caller."""
    if isinstance(cell, str):
        return cell.strip().lower() not in ("false", "0", "no", "")
    return bool(cell)


def train_settings(text: str | None) -> TrainSettings:
    """A training's settings from a script's JSON: only what the page offers, each checked by name."""
    data = json_object(parse_json(text or "{}", "settings"), "settings")
    json_known(data, set(TRAIN_API_FIELDS), "settings")
    values = {key: TRAIN_API_FIELDS[key](data[key], key) for key in data}
    if "class_word" in values:
        values["class_word"] = values["class_word"].strip() or DEFAULT_CLASS_WORD
    return TrainSettings(**values)


def _reason(name: str, reason: str) -> str:
    """The library's message without its leading "photo.jpg: " (the note names the photo itself)."""
    return reason.removeprefix(f"{name}: ")


def default_lora_name() -> str:
    return time.strftime("person-%Y%m%d-%H%M")


def _ui_name(name: str) -> str:
    """Names typed in the UI: spaces become '_'; then it must be one plain folder name (no path)."""
    from faceswap_core.training.checkpoints import sanitize_name

    cleaned = re.sub(r"\s+", "_", guards.text(name, "name of the person", max_chars=200).strip())
    if not cleaned:
        raise SettingsError("give the person a name, for example 'anna'")
    try:
        return sanitize_name(cleaned)
    except SettingsError as err:  # the library speaks of LoRA names; here it is the name of a person
        raise SettingsError(str(err).replace("LoRA name", "the name", 1)) from None


def _renamed(typed: str, saved: str) -> str:
    """A sentence when the name typed is not the name saved ("Maria long" is "Maria_long"): never silently."""
    typed = typed.strip()
    if typed == saved:
        return ""
    return f" The name “{guards.public_message(typed)}” is saved as **{saved}** (a name is one word: no spaces)."


def _folder_of(person: Person) -> Path:
    """The folder of a person added from photos (its photos are in ``FOLDER/dataset/``)."""
    return person.photos[0].parent.parent


def _stopped(person: Person) -> bool:
    """A person with photos and no LoRA whose folder holds more than its photos: a training that stopped."""
    from faceswap_core.training.trainer import untrained_person

    return not untrained_person(_folder_of(person))


class TrainHandlers:
    """What the Train tab's buttons do: prepare the photos, train, cancel."""

    def __init__(
        self,
        engine: Engine,
        work_dir: str | Path | None = None,
        vqa_model: str = DEFAULT_VQA_MODEL,
        limits: PublicLimits | None = None,
        exclusive_training: bool = False,
    ) -> None:
        """``exclusive_training``: a training moves the swap pipeline off the GPU and swaps wait until it ends
        (a GPU too small for both); otherwise trainings run beside the swaps, ``limits.max_trainings`` at once."""
        self.engine = engine
        self.limits = limits or PublicLimits()
        self.files = ResultFiles()  # copies of what the page shows from a --lora-dir Gradio does not serve
        if work_dir is None:  # earlier runs' prepared photos (64 MB per 50 photos), left by a kill -9
            remove_stale(tempfile.gettempdir(), "faceswap-datasets-*", RESULT_MAX_AGE_S)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="faceswap-datasets-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = TrainingJobs(engine.parked if exclusive_training else None, slots=self.limits.max_trainings)
        self.people = People(engine.loras)
        self.vqa_model = vqa_model
        self._captioner: Any = None
        self._captioner_lock = threading.Lock()

    def can_describe(self) -> bool:
        """Whether the captioning model is on this machine (the tab offers automatic captions only then)."""
        from faceswap_core.captions import vqa_available

        return vqa_available(self.vqa_model)

    def describe_note(self) -> str:
        """What the "Describe each photo automatically" box says under it (no server paths)."""
        if self.can_describe():
            note = f"Automatic descriptions use {self.vqa_model}; check and correct them in the table."
        else:
            note = (
                f"Automatic descriptions need the captioning model {self.vqa_model}, which is not on this server "
                "yet. Write the captions in the table yourself."
            )
        return guards.public_message(note)

    def _caption(self, crop: Path, class_word: str) -> str:
        """A VQA caption of one crop; the model loads once and is shared (one photo at a time)."""
        from faceswap_core.captions import VqaCaptioner

        with self._captioner_lock:
            if self._captioner is None:
                self._captioner = VqaCaptioner(self.vqa_model)
            return self._captioner.caption(crop, class_word)

    @user_errors
    def prepare(
        self,
        photos: list[str] | None,
        class_word: str,
        describe: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[str, str]], list[list[Any]], str, str | None]:
        """Aligned crops of each photo with captions (template, or a VQA description of each), written to a
        fresh dataset folder; the note lists skipped photos and faces that do not look like the others."""
        from faceswap_core.prepare import prepare_dataset

        if not photos:  # a person's own photos may be in the table; removing uploads clears it (photos.clear)
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        describe = _ticked(describe)
        if describe and not self.can_describe():
            raise SettingsError(self.describe_note())
        if not isinstance(photos, list) or len(photos) > MAX_TRAIN_PHOTOS:
            raise SettingsError(f"give at most {MAX_TRAIN_PHOTOS} photos of the person (5 to 20 work best)")
        class_word = guards.text(class_word, "class word", max_chars=40).strip()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(self.work_dir, "dataset-*", RESULT_MAX_AGE_S)  # prepared an hour ago and never trained
        out = Path(tempfile.mkdtemp(prefix="dataset-", dir=self.work_dir))
        done = [0]

        def on_photo(name: str, path: Path | None, reason: str | None) -> None:
            done[0] += 1
            progress((done[0], len(photos)), desc="Aligning faces", unit="photos")

        class_word = class_word or DEFAULT_CLASS_WORD
        report = prepare_dataset(photos, out, class_word=class_word, on_photo=on_photo)
        captions = dict(report.captions)
        if describe:
            for number, path in enumerate(report.written, start=1):
                progress((number, len(report.written)), desc="Describing each photo", unit="photos")
                captions[path.name] = self._caption(path, class_word)
        rows = [[name, caption, True] for name, caption in captions.items()]
        self.write_captions(out, rows)
        gallery = [
            (str(path), f"⚠ {path.name}: unlike the others" if path.name in report.unlike else path.name)
            for path in report.written
        ]
        message = f"{len(report.written)} photo(s) ready."
        if report.skipped:
            skipped = "\n".join(
                f"- {Path(name).name}: {_reason(Path(name).name, reason)}" for name, reason in report.skipped
            )
            message += f" {len(report.skipped)} skipped:\n{skipped}"
        if report.unlike:
            unlike = "\n".join(
                f"- {name}: {UNLIKE_NOTE.format(likeness=words.likeness(far))}" for name, far in report.unlike.items()
            )
            message += (
                f"\n\n⚠ Check {'this photo' if len(report.unlike) == 1 else 'these photos'}:\n{unlike}\n\n"
                "If it is somebody else, untick **use** in the captions table to leave it out of training."
            )
        if len(report.written) < 5:
            message += "\n\n5 to 20 photos of the same person, from different angles and light, work best."
        return gallery, rows, message, str(out)

    @staticmethod
    def write_captions(dataset: Path, rows: list[list[Any]]) -> None:
        """Save the (possibly edited) captions table as the dataset's metadata.csv; unticked rows are left out."""
        known = {p.name for p in dataset.iterdir() if p.suffix.lower() == ".png"}
        cleaned = []
        for name, caption, use in rows:
            guards.text(caption, f"caption of {name[:40]}", max_chars=MAX_PROMPT_CHARS)
            if name not in known:
                raise DatasetError(f"captions table: {name!r} is not one of the prepared photos")
            if not use:
                continue
            if not caption.strip():
                raise DatasetError(f"captions table: the caption of {name} is empty")
            cleaned.append([name, caption.strip()])
        if not cleaned:
            if rows:
                raise DatasetError("every photo is unticked in the captions table; tick **use** for at least one")
            raise DatasetError("the captions table is empty; upload photos of the person first")
        write_metadata(dataset, cleaned)

    def _session(self, request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "local"

    @user_errors
    def train(
        self,
        dataset: str | None,
        captions: Any,
        name: str,
        class_word: str,
        steps: float,
        rank: float,
        learning_rate: float,
        checkpoint_every: float,
        resolution: float,
        current_lora: str | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[str, Any, list[tuple[str, str]], Any]]:
        """The page's Train: its form's values, each checked and named; streams as :meth:`start` does."""
        settings = TrainSettings(
            steps=int(guards.number(steps, "steps", TRAIN_STEPS, integer=True)),
            rank=int(guards.number(rank, "rank", TRAIN_RANK, integer=True)),
            learning_rate=guards.number(learning_rate, "learning rate", TRAIN_LR),
            checkpoint_every=int(
                guards.number(checkpoint_every, "checkpoint interval", TRAIN_CHECKPOINT_EVERY, integer=True)
            ),
            resolution=int(guards.number(resolution, "resolution", TRAIN_RESOLUTION, integer=True)),
            class_word=guards.text(class_word, "class word", max_chars=40).strip() or DEFAULT_CLASS_WORD,
        )
        yield from self.start(dataset, captions, name, settings, current_lora, request, progress)

    @user_errors
    def api_train(
        self,
        dataset: str | None,
        captions: Any,
        name: str,
        settings: str | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[str, Any, list[tuple[str, str]], Any]]:
        """``/train`` for scripts: the photos prepared by ``/prepare``, their captions, a name, and the settings
        as JSON (``steps``, ``rank``, ``learning_rate``, ``checkpoint_every``, ``resolution``, ``class_word``)."""
        yield from self.start(dataset, captions, name, train_settings(settings), None, request, progress)

    def start(
        self,
        dataset: str | None,
        captions: Any,
        name: str,
        settings: TrainSettings,
        current_lora: str | None,
        request: gr.Request | None,
        progress: gr.Progress,
    ) -> Iterator[tuple[str, Any, list[tuple[str, str]], Any]]:
        """Stream (status, loss table, samples, LoRA picker) while the trainer runs as a background job."""
        from faceswap_core.training import train_lora

        folder = Path(dataset) if isinstance(dataset, str) and dataset else None
        uploaded = folder is not None and folder.is_dir() and self.work_dir.resolve() in folder.resolve().parents
        person = None if uploaded else self._untrained(name)
        if not uploaded and person is None:
            raise gr.Error("Upload photos of the person first, or pick a person added from photos.")
        settings.validate()
        self.limits.check_training(settings.steps, settings.resolution)
        self.jobs.check_free(self._session(request))  # "busy until", before a name is claimed or a file written
        if person is not None and _stopped(person):
            raise SettingsError(self._stopped_note(person))
        renamed = ""
        if person is None:
            lora_name = _ui_name(name)
            renamed = _renamed(name, lora_name)
            self.engine.loras.check_new_name(lora_name)  # never beside (and hiding) an existing LoRA
            self.engine.loras.owners.claim(lora_name, self.engine.loras.current_viewer())  # this visitor's
        else:  # upgraded in place, on its own photos (the table may untick or re-caption them)
            lora_name, folder = person.name, person.photos[0].parent
        self.write_captions(folder, _rows(captions))

        def run(report: Any, cancel: Any) -> Any:
            # the prepared photos stay while the tab shows them (another person may be trained on them);
            # the next prepare and the next start remove those unused for an hour
            return train_lora(
                None if person is not None else folder,
                lora_name,
                base_model=self.engine.base_model,
                settings=settings,
                lora_dir=self.engine.loras.folder,
                progress=report,
                cancel=cancel,
                device=self.engine.model.device,
                base_config=self.engine.model.base_config,
            )

        job = self.jobs.start(self._session(request), lora_name, run)
        yield from self._follow(job, lora_name, current_lora, progress, renamed)

    def _follow(
        self, job: Any, lora_name: str, current_lora: str | None, progress: gr.Progress, renamed: str = ""
    ) -> Iterator[tuple[str, Any, list[tuple[str, str]], Any]]:
        """Stream a training job's reports to the page until it ends; stop it if the page goes away.
        ``renamed`` says, at the start and the end, that the name typed was saved in another form."""
        losses: list[dict[str, float]] = []
        samples: list[tuple[str, str]] = []
        shown_samples: set[Any] = set()  # the sample files already shown (as copies, maybe)
        status = f"Starting training of **{lora_name}**…{renamed}"
        try:
            yield status, _loss_table(losses), samples, gr.skip()
            while True:
                # Never block for long: Gradio looks whether the page is still there between outputs.
                report = job.next_report(timeout=HEARTBEAT_S)
                if report is DONE:
                    break
                if job.cancel.is_set() and status != STOPPING:  # the last step and its checkpoint take a while
                    status = STOPPING
                    yield status, gr.skip(), gr.skip(), gr.skip()
                if report is None:
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    continue
                if status != STOPPING:
                    status = self._status(lora_name, report)
                if report.stage == "training" and report.loss is not None:
                    losses.append({"step": report.step, "loss": float(report.loss)})
                    progress((report.step, report.total), desc="Training", unit="steps")
                else:
                    progress(None, desc=STAGE_WORDS.get(report.stage, report.stage))
                if report.latest_sample and report.latest_sample not in shown_samples:
                    shown_samples.add(report.latest_sample)
                    shown = self.files.servable(report.latest_sample)
                    samples.append((shown, _sample_caption(Path(report.latest_sample))))
                if not job.has_reports():  # under a burst of reports, only show the newest
                    yield status, _loss_table(losses), samples, gr.skip()
        finally:
            # Done, failed, or the page went away (Gradio closes the generator from its event loop, so
            # this must not wait): stop the run. A finished run ignores it.
            job.cancel.set()
        if job.error is not None:
            if isinstance(job.error, FaceswapError):
                raise job.error
            raise gr.Error(f"training failed: {type(job.error).__name__}: {job.error}") from job.error
        result = job.result
        if result.cancelled:
            kept = result.checkpoints[-1].name if result.checkpoints else None
            final = f"Cancelled after {result.steps_done} steps." + (
                f" What **{lora_name}** learned so far is saved and selected in the Swap tab. "
                f"To go on, pick **{lora_name}** under Person and press **Resume**."
                if kept
                else ""
            )
            select = f"{lora_name}/{kept}" if kept else current_lora
        else:
            saved = len(result.checkpoints)
            final = (
                f"✅ **{lora_name}** is ready after {result.steps_done} training steps and selected in the Swap tab. "
                f"The Swap tab's list also has {lora_name} as saved at {saved} earlier step{'s' * (saved != 1)}."
            )
            select = lora_name
        yield final + renamed, _loss_table(losses), samples, refresh_lora_picker(self.engine, current_lora, select)

    @user_errors
    def resume(
        self, name: Any, current_lora: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> Iterator[tuple[str, Any, list[tuple[str, str]], Any]]:
        """Continue this visitor's stopped training (killed, crashed or cancelled) from its newest checkpoint,
        with the settings it was started with; streams like :meth:`train`.

        Public endpoint: ``name`` must be one of the caller's own people whose training stopped.
        """
        from faceswap_core.training import train_lora

        person = self._stopped_person(name)
        step = stopped_at(_folder_of(person))
        if step is None:
            raise SettingsError(f"{person.name} has no stopped training with a checkpoint to resume; start it over")
        settings = resume_settings(_folder_of(person))
        self.limits.check_training(settings.steps, settings.resolution)
        self.jobs.check_free(self._session(request))

        def run(report: Any, cancel: Any) -> Any:
            return train_lora(
                None,
                person.name,
                base_model=self.engine.base_model,
                settings=settings,
                lora_dir=self.engine.loras.folder,
                resume=True,
                progress=report,
                cancel=cancel,
                device=self.engine.model.device,
                base_config=self.engine.model.base_config,
            )

        job = self.jobs.start(self._session(request), person.name, run)
        yield from self._follow(job, person.name, current_lora, progress)

    @user_errors
    def start_over(self, name: Any, confirmed: Any) -> tuple[Any, ...]:
        """Delete a stopped training of this visitor's person (checkpoints, samples, record); its photos stay,
        so **Train** starts it again from step 0. Returns the note, the two buttons' updates and the emptied
        loss chart, samples, ranking note and chart (they showed the training that is gone).

        Public endpoint: ``confirmed`` must be true (the page asks first); only the caller's own people.
        """
        person = self._stopped_person(name)
        if not _ticked(confirmed):
            return "Nothing was deleted.", *(gr.skip() for _ in range(6))
        folder = _folder_of(person)
        scratch = Path(tempfile.mkdtemp(prefix=f".{person.name}-restart-", dir=folder.parent))
        for entry in folder.iterdir():  # moved out in one rename each, then deleted: a kill leaves a hidden folder
            if entry.name != DATASET_DIR:
                entry.rename(scratch / entry.name)
        shutil.rmtree(scratch, ignore_errors=True)
        note = f"**{person.name}**'s stopped training was deleted; the photos stay. Press **Train** to start over."
        return note, gr.Button(visible=False), gr.Button(visible=False), None, [], "", None

    def resume_offer(self, name: Any) -> tuple[Any, ...]:
        """The "Resume from step N" and "Start over" buttons, shown for a person whose training stopped, and
        the settings it ran with (steps, checkpoint interval, rank, learning rate, resolution): the ones Resume
        continues with, shown instead of whatever the sliders held."""
        hidden = (gr.Button(visible=False), gr.Button(visible=False), *(gr.skip() for _ in range(5)))
        person = self._untrained(name) if name else None
        if person is None or not _stopped(person):
            return hidden
        step = stopped_at(_folder_of(person))
        resume = gr.Button(f"Resume from step {step}", visible=True) if step else gr.Button(visible=False)
        try:
            ran = resume_settings(_folder_of(person))
        except SettingsError:  # no usable record: Start over only, the sliders as they are
            return resume, gr.Button(visible=True), *hidden[2:]
        settings = (ran.steps, ran.checkpoint_every, ran.rank, ran.learning_rate, ran.resolution)
        return resume, gr.Button(visible=True), *settings

    def _stopped_person(self, name: Any) -> Person:
        """The caller's own person whose training stopped, by name; nobody else's, and not while it trains."""
        person = self._untrained(name)
        if person is None or not _stopped(person):
            raise SettingsError("pick one of your people whose training stopped")
        if self.jobs.training(person.name):
            raise SettingsError(f"{person.name} is training now; cancel that first")
        return person

    @staticmethod
    def _stopped_note(person: Person) -> str:
        step = stopped_at(_folder_of(person))
        resume = f"**Resume from step {step}**, or " if step else ""
        return f"{person.name}'s training stopped before its end: {resume}**Start over** (above, under Person)"

    @user_errors
    def rank(self, name: Any, current_lora: str | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Rank a trained person's checkpoints by likeness; the recommended one is selected in the Swap tab.

        Public endpoint: ``name`` must be a trained person in the people folder (no path, no checkpoint).
        """
        from faceswap_core.training.checkpoints import list_checkpoints
        from faceswap_core.training.ranking import rank_checkpoints

        person = _ui_name(name)
        info = self.engine.loras.resolve(person)
        if info.metadata.get("checkpoint_step") is not None or not list_checkpoints(info.path.parent):
            return f"**{person}** has no saved training steps to compare.", None, gr.skip()

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Comparing saved steps with the photos", unit="samples")

        ranking = rank_checkpoints(self.engine, person, progress=report)
        table = _scores_table(ranking.checkpoints)
        picker = (
            refresh_lora_picker(self.engine, current_lora, ranking.recommended) if ranking.recommended else gr.skip()
        )
        return _ranking_note(person, ranking.recommended), table, picker

    def rank_after_training(self, name: Any, current_lora: str | None, progress: gr.Progress = gr.Progress()) -> Any:
        """The ranking that follows a training run; a run cancelled before its first checkpoint has nothing to rank."""
        if _ui_name(name) not in self.engine.loras.names():
            return "Nothing to compare: this training saved no step.", None, gr.skip()
        return self.rank(name, current_lora, progress)

    def _untrained(self, name: Any) -> Person | None:
        """The person added from photos (no LoRA yet) of that name, if there is one."""
        text = guards.text(name, "name", max_chars=200).strip()
        found = [person for person in self._untrained_people() if person.name == text]
        return found[0] if found else None

    def untrained_choices(self) -> list[tuple[str, str]]:
        """The "Person" picker: a new person from uploaded photos, or one added from photos to upgrade."""
        return [(NEW_PERSON, "")] + [(person.label, person.name) for person in self._untrained_people()]

    def _untrained_people(self) -> list[Person]:
        """People added from photos that this visitor may train (their own; all of them with --shared-people)."""
        return [
            person
            for person in self.people.list()
            if person.lora is None and person.photos and self.engine.loras.can_change(person.name)
        ]

    def refresh_people(self, current: str | None) -> Any:
        """Re-read the people (one added on the Swap tab a minute ago shows up); keep the choice if it still fits."""
        choices = self.untrained_choices()
        return gr.Dropdown(choices=choices, value=current if current in {v for _, v in choices} else "")

    @user_errors
    def load_person(self, name: str | None, shown: str | None = None) -> tuple[Any, ...]:
        """Crops, captions, note, dataset and name for the "Person" picker: a person's own photos, or a fresh start.

        ``shown`` is the person on screen now ("": the photos uploaded here): the picker reports a choice
        when it is merely opened and closed, and that must not throw away what the user uploaded and typed.
        """
        if shown is not None and (name or "") == shown:
            return tuple(gr.skip() for _ in range(6))
        if not name:
            return [], [], "", None, default_lora_name(), gr.File(value=None, visible=True)
        person = self._untrained(name)
        if person is None:
            raise SettingsError("pick a person added from photos (trained people continue with resume)")
        from faceswap_core.dataset_file import read_metadata

        captions = {item.image.name: item.caption for item in read_metadata(person.photos[0].parent)}
        rows = [[photo.name, captions.get(photo.name, ""), True] for photo in person.photos]
        gallery = [(self.files.servable(photo), photo.name) for photo in person.photos]
        # no upload box while a saved person is on screen: its photos are the crops, and new ones make a new person
        return gallery, rows, self._person_note(person), None, person.name, gr.File(value=None, visible=False)

    def person_note(self, name: Any) -> Any:
        """The note over a picked person's photos, read afresh (after Start over it no longer offers Resume)."""
        person = self._untrained(name) if name else None
        return self._person_note(person) if person is not None else gr.skip()

    def _person_note(self, person: Person) -> str:
        note = (
            f"**{person.name}**: {len(person.photos)} photo(s) added earlier. Training teaches the app this "
            "person's face; the photos stay and are used beside it."
        )
        if _stopped(person):
            note = f"**{person.name}**: {len(person.photos)} photo(s). {self._stopped_note(person)}."
        elif len(person.photos) < 5:
            note += " 5 to 20 photos work best: add a new person with more photos for a closer likeness."
        return note

    def _status(self, name: str, report: Any) -> str:
        stage = STAGE_WORDS.get(report.stage, report.stage)
        if report.stage != "training":
            return f"{stage}…"
        text = f"{stage} **{name}**: step {report.step} of {report.total}"
        if report.eta is not None:
            text += f", about {_duration(report.eta)} left"
        return text

    def cancel(self, request: gr.Request) -> str:
        """Stop this page's training after the current step, which is saved as a checkpoint (with a sample)."""
        job = self.jobs.get(self._session(request))
        if job is None or job.ended:
            return "No training is running."
        job.cancel.set()
        return STOPPING


LOSS_SMOOTHING = 0.95  # EMA weight: about a 20-step window, enough to show the trend of a noisy diffusion loss


def smoothed(values: list[float], weight: float = LOSS_SMOOTHING) -> list[float]:
    """Exponential moving average, debiased (as TensorBoard does) so the line starts at the first value."""
    out, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**count))
    return out


def _ranking_note(person: str, recommended: str | None) -> str:
    """What the comparison found, in the user's words (the library's note speaks of checkpoints and scores)."""
    if recommended is None:
        return (
            f"None of **{person}**'s sample pictures showed a face to compare with the photos, so no save is "
            "picked for you (a real training whose samples show no face did not learn one yet)."
        )
    step = recommended.rpartition("-")[2]
    return (
        f"**{person}** as saved at step {step} looks most like the photos and is selected in the Swap tab "
        "(lower is more alike on the chart; you can still pick any save there)."
    )


def _scores_table(scores: list[Any]) -> Any:
    """The checkpoint chart's data: step and likeness score of the checkpoints whose samples showed a face."""
    import pandas as pd

    rows = [(entry.step, entry.score) for entry in scores if entry.score is not None]
    return pd.DataFrame(rows, columns=["step", "score"]) if rows else None


def _loss_table(losses: list[dict[str, float]]) -> Any:
    """The loss chart's data: numeric step and loss (so both axes are quantitative, not categories), and a
    ``series`` column, "raw" and "smoothed", that draws the two lines in two colours.

    None before the first step, and both series from the first step on: the page fixes the chart's
    series from the first table it draws, so an empty table would draw nothing ever after, and a
    series that appeared later would never be drawn.
    """
    import pandas as pd

    if not losses:
        return None
    steps = [int(row["step"]) for row in losses]
    raw = [float(row["loss"]) for row in losses]
    return pd.DataFrame(
        {
            "step": pd.Series(steps + steps, dtype="int64"),
            "loss": pd.Series(raw + smoothed(raw), dtype="float64"),
            "series": pd.Series(["raw"] * len(raw) + ["smoothed"] * len(raw), dtype="object"),
        }
    )


def _sample_caption(path: Path) -> str:
    match = re.search(r"(\d+)", path.stem)
    return f"step {int(match.group(1))}" if match else path.stem


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def create_train_tab(engine: Engine, lora_picker: gr.Dropdown, handlers: TrainHandlers | None = None) -> None:
    """Lay out the Train tab in the current Blocks; ``lora_picker`` (the Swap tab's) is refreshed after training."""
    handlers = handlers or TrainHandlers(engine)
    defaults = TrainSettings()
    dataset = gr.State(None)
    gr.Markdown(
        "**1.** Upload 5–20 photos of the person (one face each, varied angles and light). "
        "**2.** Check the crops and the captions (a photo of somebody else is flagged: untick it). "
        "**3.** Name the person and press **Train**. Along the way a sample picture shows what it has learned so far."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            who = gr.Dropdown(  # the visitor's own people are listed when it is opened (none are known here)
                choices=[(NEW_PERSON, "")],
                value="",
                label="Person",
                info="Train a new person from photos, or train one added from photos for a closer likeness",
                elem_id="train-person",
            )
            with gr.Row():  # a person whose training stopped (a killed server, a closed page, Cancel)
                resume = gr.Button("Resume", visible=False, size="sm", elem_id="resume-train")
                start_over = gr.Button("Start over", visible=False, size="sm", variant="stop", elem_id="start-over")
            confirmed = gr.Checkbox(False, visible=False)  # Start over's "are you sure", answered in the browser
            with gr.Row():
                class_word = gr.Dropdown(
                    choices=list(CLASS_WORDS), value=DEFAULT_CLASS_WORD, label="The person is a", scale=1
                )
                photos = gr.File(
                    label="Photos of the person",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    elem_id="train-photos",
                    scale=3,
                )
            prepare_note = gr.Markdown(elem_id="prepare-note")
            crops = gr.Gallery(  # the height follows the crops: a fixed one cut off the second row
                label="Aligned crops", columns=6, height="auto", allow_preview=True, elem_id="crops"
            )
            gr.Markdown(CAPTION_ADVICE, elem_id="caption-advice")
            available = handlers.can_describe()
            describe = gr.Checkbox(
                value=False,
                label="Describe each photo automatically",
                info=handlers.describe_note(),
                interactive=available,
                elem_id="describe",
            )
            captions = gr.Dataframe(
                headers=CAPTION_HEADERS,
                datatype=["str", "str", "bool"],
                column_count=(3, "fixed"),
                interactive=True,
                static_columns=[0],
                wrap=True,
                label="Captions (edit the middle column; untick use to leave a photo out)",
                elem_id="captions",
            )
            guards.max_rows(captions, handlers.limits.max_caption_rows)
        with gr.Column(scale=2):
            name = gr.Textbox(value=default_lora_name, label="Name of the person", elem_id="lora-name")
            steps = range_slider(
                replace(TRAIN_STEPS, maximum=min(TRAIN_STEPS.maximum, handlers.limits.max_train_steps)),
                label="Training steps",
                info="About 800 for 10 photos; more photos, more steps",
                elem_id="train-steps",
            )
            # expert words (LoRA rank, learning rate, checkpoint) only in here, closed until asked for
            with gr.Accordion("Advanced", open=False, elem_id="train-advanced"):
                checkpoint_every = range_slider(
                    TRAIN_CHECKPOINT_EVERY,
                    label="Save what it learned (and a sample picture) every N steps",
                    info="Each save is a checkpoint, listed under the person in the Swap tab to pick if more alike",
                    elem_id="checkpoint-every",
                )
                rank = range_slider(
                    TRAIN_RANK,
                    value=defaults.rank,
                    label="Capacity",
                    info="LoRA rank: more learns more detail, bigger file",
                )
                learning_rate = gr.Number(
                    value=defaults.learning_rate,
                    minimum=TRAIN_LR.minimum,
                    maximum=TRAIN_LR.maximum,
                    label="Learning rate",
                )
                guards.safe_number(learning_rate, "Learning rate")
                resolution = range_slider(
                    TRAIN_RESOLUTION,
                    value=defaults.resolution,
                    label="Resolution (px)",
                    info="The photos' size while training; the model works best at 1024",
                    elem_id="train-resolution",
                )
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train")
                cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-train")
            status = gr.Markdown(elem_id="train-status")
            loss = gr.LinePlot(
                None,
                x="step",
                y="loss",
                color="series",
                color_map={"raw": "#9ca3af", "smoothed": "#2563eb"},
                title="How well it has learned",
                y_title="error (lower is better)",
                color_title="follow the smoothed line",
                y_axis_format=".3~f",
                height=240,
                elem_id="loss",
            )
            samples = gr.Gallery(label="A sample picture at each save", columns=4, height=220, elem_id="samples")
            rank_button = gr.Button("Find the save most like the photos", size="sm", elem_id="rank-checkpoints")
            rank_note = gr.Markdown(elem_id="rank-note")
            rank_plot = gr.LinePlot(
                x="step",
                y="score",
                title="Likeness at each save",
                y_title="unlikeness to the photos (lower is more alike)",
                height=200,
                elem_id="checkpoint-scores",
            )

    prepare_inputs = [photos, class_word, describe]
    prepare_outputs = [crops, captions, prepare_note, dataset]
    photos.upload(handlers.prepare, prepare_inputs, prepare_outputs, concurrency_id="faces", concurrency_limit=4)
    photos.clear(lambda: ([], [], "", None), None, prepare_outputs, queue=False)
    for control in (class_word, describe):
        control.change(handlers.prepare, prepare_inputs, prepare_outputs, concurrency_id="faces", concurrency_limit=4)
    who.focus(handlers.refresh_people, who, who, queue=False)
    shown = gr.State("")  # the person whose photos are on screen ("": the ones uploaded here)
    who.input(
        handlers.load_person, [who, shown], [crops, captions, prepare_note, dataset, name, photos], queue=False
    ).success(lambda person: person or "", who, shown, queue=False)
    ran_with = [steps, checkpoint_every, rank, learning_rate, resolution]
    who.input(handlers.resume_offer, who, [resume, start_over, *ran_with], queue=False)
    ranked = on_gpu(handlers.rank, duration=RANK_GPU_SECONDS)
    rank_io: dict[str, Any] = {"inputs": [name, lora_picker], "outputs": [rank_note, rank_plot, lora_picker]}
    rank_io["show_progress_on"] = [rank_note]  # the Swap tab's picker stays usable while samples render
    rank_button.click(ranked, **rank_io, api_name="rank_checkpoints", **gpu_queue(engine))
    # Trainings have a queue slot of their own (swaps keep theirs): as many watchers as trainings may run, and
    # a few more, so that a visitor who finds every training slot taken is told "busy until" at once.
    training_slot: dict[str, Any] = {"concurrency_id": "train", "concurrency_limit": handlers.jobs.slots + 2}
    train_io: dict[str, Any] = {"outputs": [status, loss, samples, lora_picker], "show_progress_on": [status]}
    form = [dataset, captions, name, class_word, steps, rank, learning_rate, checkpoint_every, resolution, lora_picker]
    train.click(
        on_gpu(said_in_status(handlers.train, outputs=4), duration=TRAIN_GPU_SECONDS),
        form,
        **train_io,  # a refused start (no photos yet) is told in the status, not as a badge on the chart
        api_name="train_form",
        api_visibility="private",  # the page's form; scripts send the settings as JSON (below)
        **training_slot,
    ).success(  # after training: the recommended checkpoint
        on_gpu(handlers.rank_after_training, duration=RANK_GPU_SECONDS),
        **rank_io,
        **gpu_queue(engine),
    )
    with gr.Row(visible=False):  # /train for scripts: after /prepare, the captions, a name and the settings as JSON
        api_settings = gr.Textbox(label="the training's settings as JSON (steps, rank, learning_rate, ...)")
        api_train = gr.Button()
    api_train.click(
        on_gpu(said_in_status(handlers.api_train, outputs=4), duration=TRAIN_GPU_SECONDS),
        [dataset, captions, name, api_settings],
        **train_io,
        api_name="train",
        **training_slot,
    )
    resume.click(
        on_gpu(said_in_status(handlers.resume, outputs=4), duration=TRAIN_GPU_SECONDS),
        [who, lora_picker],
        **train_io,
        api_name="resume_training",
        **training_slot,
    ).success(  # the note that offered Resume is out of date now
        lambda: (gr.Button(visible=False), gr.Button(visible=False), ""),
        None,
        [resume, start_over, prepare_note],
        queue=False,
    ).success(  # the recommended checkpoint, as after Train
        on_gpu(handlers.rank_after_training, duration=RANK_GPU_SECONDS),
        **rank_io,
        **gpu_queue(engine),
    )
    start_over.click(
        handlers.start_over,
        [who, confirmed],
        [status, resume, start_over, loss, samples, rank_note, rank_plot],
        js="(person) => [person, confirm('Delete the stopped training of ' + person + '? Its photos stay.')]",
        api_name="start_over",
        queue=False,
    ).success(handlers.person_note, who, prepare_note, queue=False)
    cancel.click(handlers.cancel, None, status, queue=False)
