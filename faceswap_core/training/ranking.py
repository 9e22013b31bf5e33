"""Which training checkpoint to swap with: ranked by likeness on fixed-seed samples, near-copies penalised.

A LoRA's checkpoints go from "not yet the person" to "the person, but only as in the training photos"
(over-fitted: the same pose, light and expression whatever the prompt). Every checkpoint renders the
same samples (one seed, prompts with poses and expressions that training photos rarely have): a
:func:`~faceswap_core.sweep.sweep` over checkpoints x prompts of a grey frame repainted whole, the
same loop Try strengths runs. Each sample is scored by dlib's identity distance to the centre of the
training photos. A sample closer to one training photo than the training photos are to each other is
a near-copy and pays a penalty. The earliest checkpoint within ``RANK_MARGIN`` of the best is
recommended: later ones add over-fitting risk for no measurable likeness.

The scores go into ``NAME/checkpoint_scores.json`` beside ``training.json``, where the Swap tab's
picker reads the recommendation. When no sample shows a face (a tiny test model, a broken LoRA) the
file says so and recommends nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceswap_core.errors import NoFaceError, SettingsError
from faceswap_core.files import write_text
from faceswap_core.settings import DEFAULT_CLASS_WORD, SwapSettings
from faceswap_core.training import checkpoints as ckpt

if TYPE_CHECKING:
    from faceswap_core.engine import Engine, Progress

SCORES_FILE = "checkpoint_scores.json"
RANK_DIR = "rank"  # samples/rank/step-STEP-K.png: the images the scores were measured on
RANK_SEED = 1234
RANK_STEPS = 20
# Poses and expressions training photos (mostly frontal, neutral or smiling) lack: a checkpoint that
# still draws the person here has learnt the face, not the photos.
RANK_VARIATIONS = (
    "laughing with an open mouth",
    "three-quarter view, looking to the side",
    "eyes closed, calm",
    "surprised, raised eyebrows, outdoors",
)
RANK_MARGIN = 0.02  # identity distance: dlib's same-person threshold is 0.6, photos of one person spread ~0.1
COPY_PENALTY = 0.1  # added to a sample's score at a pixel-perfect copy, falling to 0 at the copy threshold
COPY_FRACTION = 0.5  # closer than this fraction of the photos' typical nearest-neighbour distance: a copy

# (LoRA names, prompts, seed, progress) -> one sample per LoRA x prompt, LoRA-major: a sweep's candidates
Render = Callable[[Sequence[str], Sequence[str], int, "Progress | None"], list[Image.Image]]
Describe = Callable[[Image.Image], "np.ndarray | None"]  # a face descriptor, None when there is no face


@dataclass
class CheckpointScore:
    """One checkpoint's likeness: mean score over the samples that show a face (lower is better)."""

    name: str
    step: int
    score: float | None
    distance: float | None  # mean distance to the centre of the training photos
    copy_penalty: float | None
    faces: int  # samples in which a face was found
    samples: list[str] = field(default_factory=list)  # relative to the LoRA folder


@dataclass
class Ranking:
    """All checkpoints of one LoRA in step order, the recommended one, and a note for the user."""

    lora: str
    checkpoints: list[CheckpointScore]
    recommended: str | None
    note: str
    prompts: list[str]
    seed: int
    reference_spread: float | None  # leave-one-out distance of a training photo to the others' centre
    copy_threshold: float | None
    elapsed_s: float = 0.0
    key: dict[str, Any] = field(default_factory=dict)  # what the scores were measured on (see ``ranking_key``)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ranking:
        fields = {name: value for name, value in data.items() if name != "version"}
        fields["checkpoints"] = [CheckpointScore(**entry) for entry in data["checkpoints"]]
        return cls(**fields)


def rank_prompts(base_prompt: str) -> list[str]:
    """The sample prompts: the LoRA's own caption with each variation."""
    return [f"{base_prompt}, {variation}" for variation in RANK_VARIATIONS]


def dlib_describe(image: Image.Image) -> np.ndarray | None:
    """The largest face's dlib descriptor, or None when the image shows no face."""
    from faceswap_core.faces.identity import face_descriptor

    try:
        return face_descriptor(image)
    except NoFaceError:
        return None


def reference_geometry(descriptors: Sequence[np.ndarray]) -> tuple[np.ndarray, float | None, float | None]:
    """The training photos' centre, their leave-one-out spread and the near-copy threshold.

    Leave-one-out: a training photo measured against the centre of the *others* is how far a new,
    genuine photo of the person lands from the centre; it says what a good score looks like.
    """
    stack = np.stack(descriptors)
    centre = stack.mean(axis=0)
    if len(stack) < 2:
        return centre, None, None
    spread, nearest = [], []
    for index in range(len(stack)):
        others = np.delete(stack, index, axis=0)
        spread.append(float(np.linalg.norm(stack[index] - others.mean(axis=0))))
        nearest.append(float(np.min(np.linalg.norm(others - stack[index], axis=1))))
    return centre, float(np.median(spread)), COPY_FRACTION * float(np.median(nearest))


def score_sample(
    descriptor: np.ndarray, centre: np.ndarray, references: np.ndarray, copy_threshold: float | None
) -> tuple[float, float]:
    """(distance to the centre, near-copy penalty) of one sample's face."""
    distance = float(np.linalg.norm(descriptor - centre))
    if not copy_threshold:
        return distance, 0.0
    nearest = float(np.min(np.linalg.norm(references - descriptor, axis=1)))
    return distance, COPY_PENALTY * max(0.0, 1.0 - nearest / copy_threshold)


def recommend(scores: Sequence[CheckpointScore], margin: float = RANK_MARGIN) -> CheckpointScore | None:
    """The earliest checkpoint whose score is within ``margin`` of the best; None when none was scored."""
    scored = [entry for entry in scores if entry.score is not None]
    if not scored:
        return None
    best = min(entry.score for entry in scored if entry.score is not None)
    return min((entry for entry in scored if entry.score <= best + margin), key=lambda entry: entry.step)


def ranking_key(
    base_model: str, found: Sequence[tuple[int, Path]], photos: Sequence[Path], steps: int, seed: int
) -> dict:
    """What a ranking depends on: the base model, each checkpoint's and photo's file version, steps and seed."""

    def version(path: Path) -> str:
        stat = path.stat()
        return f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}"

    return {
        "base_model": base_model,
        "checkpoints": [version(path / ckpt.WEIGHTS_NAME) for _, path in found],
        "photos": [version(photo) for photo in photos],
        "steps": steps,
        "seed": seed,
        "variations": list(RANK_VARIATIONS),
        "sampling": "sweep, one seed",  # scores from the earlier seed-per-prompt loop are measured again
    }


def rank_checkpoints(
    engine: Engine,
    lora: str,
    *,
    render: Render | None = None,
    describe: Describe = dlib_describe,
    steps: int = RANK_STEPS,
    seed: int = RANK_SEED,
    reuse: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Ranking:
    """Render, score and rank every checkpoint of the trained LoRA ``lora``; write ``checkpoint_scores.json``.

    ``render`` makes the samples of some checkpoints x prompts (default :func:`sweep_render`: one sweep
    on the engine, a full-frame repaint at strength 1, the LoRA at weight 1); ``describe`` finds the
    face's descriptor. Both can be replaced (tests, other scorers).
    With ``reuse``, scores measured on the same checkpoints, photos, base model and samples are read
    back instead of measured again (ranking costs minutes on a GPU).
    """
    from faceswap_core.loras import reference_photos

    started = time.perf_counter()
    info = engine.loras.resolve(lora)
    folder = info.path.parent
    found = ckpt.list_checkpoints(folder)
    if not found:
        raise SettingsError(f"{info.name} has no training checkpoints to rank")
    photos = reference_photos(info)
    key = ranking_key(engine.base_model, found, photos, steps, seed)
    stored = read_scores(folder)
    if reuse and stored.get("key") == key:
        return Ranking.from_json(stored)
    references = [d for d in (describe(Image.open(p).convert("RGB")) for p in photos) if d is not None]
    if not references:
        raise NoFaceError(f"{info.name}: none of its {len(photos)} training photos shows a face to compare with")
    centre, spread, copy_threshold = reference_geometry(references)
    reference_stack = np.stack(references)
    record = ckpt.read_training_json(folder)
    base_prompt = record.get("sample_prompt") or f"a photo of a {record.get('class_word') or DEFAULT_CLASS_WORD} face"
    prompts = rank_prompts(base_prompt)
    make = render or sweep_render(engine, steps)
    names = [f"{folder.name}/{path.name}" for _, path in found]
    out_dir = folder / ckpt.SAMPLES_DIR / RANK_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[CheckpointScore] = []
    total = len(found) * len(prompts)
    done: dict[tuple[int, int], tuple[str, np.ndarray | None]] = {}  # (checkpoint, prompt) -> (file, descriptor)

    def measure(checkpoints: Sequence[int], numbers: Sequence[int]) -> None:
        """One sweep over these checkpoints x prompts; each sample saved and described."""
        if not checkpoints or not numbers:
            return
        before, count = len(done), len(checkpoints) * len(numbers)
        report = None if progress is None else _as_samples(progress, before, count, total)
        images = make([names[i] for i in checkpoints], [prompts[n] for n in numbers], seed, report)
        for (index, number), image in zip(itertools.product(checkpoints, numbers), images, strict=True):
            file = out_dir / f"step-{found[index][0]}-{number}.png"
            image.save(file)
            done[(index, number)] = (file.relative_to(folder).as_posix(), describe(image))
        if progress is not None:
            progress(len(done), total)

    # One sample of the first and of the last checkpoint first: when neither shows a face, the model draws
    # none (SDXL draws a face for these prompts with any LoRA), and nothing more is rendered.
    last = len(found) - 1
    measure(sorted({0, last}), [0])
    draws_faces = any(descriptor is not None for _, descriptor in done.values())
    if draws_faces:
        measure(range(1, last), [0])
        measure(range(len(found)), range(1, len(prompts)))
    for index, (step, _) in enumerate(found):
        name = names[index]
        if not draws_faces:
            files = [done[(index, 0)][0]] if (index, 0) in done else []
            results.append(CheckpointScore(name, step, None, None, None, 0, files))
            continue
        distances, penalties, files = [], [], []
        for number in range(len(prompts)):
            file, descriptor = done[(index, number)]
            files.append(file)
            if descriptor is not None:
                distance, penalty = score_sample(descriptor, centre, reference_stack, copy_threshold)
                distances.append(distance)
                penalties.append(penalty)
        faced = len(distances)
        mean_distance = float(np.mean(distances)) if faced else None
        mean_penalty = float(np.mean(penalties)) if faced else None
        # a checkpoint whose samples mostly show no face is not a good likeness, whatever the few say
        score = None
        if faced and mean_distance is not None and mean_penalty is not None:
            score = round(mean_distance + mean_penalty + (len(prompts) - faced) / len(prompts), 4)
        results.append(CheckpointScore(name, step, score, _round(mean_distance), _round(mean_penalty), faced, files))
    chosen = recommend(results)
    if chosen is None:
        note = (
            f"no face was found in {len(done)} sample(s), so no checkpoint is recommended"
            + ("" if draws_faces else " (the first and last checkpoints drew none, so the others were not rendered)")
            + "; a tiny test model draws noise, and a real LoRA whose samples show no face did not learn one"
        )
    else:
        note = f"{chosen.name} recommended: the earliest within {RANK_MARGIN:g} of the best likeness score"
    ranking = Ranking(
        info.name,
        results,
        chosen.name if chosen else None,
        note,
        prompts,
        seed,
        _round(spread),
        _round(copy_threshold),
        round(time.perf_counter() - started, 3),
        key,
    )
    write_text(folder / SCORES_FILE, json.dumps(ranking.to_json(), indent=1))
    return ranking


def read_scores(folder: Path) -> dict[str, Any]:
    """A LoRA folder's checkpoint scores ({} when it has none or the file is unreadable)."""
    try:
        data = json.loads((folder / SCORES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recommended_checkpoint(folder: Path) -> str | None:
    """The recommended checkpoint's registry name, when scores exist and the checkpoint still does."""
    name = read_scores(folder).get("recommended")
    if not isinstance(name, str) or "/" not in name:
        return None
    return name if (folder / name.split("/", 1)[1] / ckpt.WEIGHTS_NAME).is_file() else None


def recommended_in(lora_dir: Path) -> set[str]:
    """The recommended checkpoint of every ranked person in a people folder (for the pickers' labels)."""
    if not lora_dir.is_dir():
        return set()
    found = (recommended_checkpoint(folder) for folder in lora_dir.iterdir() if (folder / SCORES_FILE).is_file())
    return {name for name in found if name is not None}


def sweep_render(engine: Engine, steps: int) -> Render:
    """Samples as one sweep: a grey frame repainted whole at strength 1, each LoRA x prompt a candidate."""
    from faceswap_core import sweep as sweeps
    from faceswap_core.requests import SwapRequest

    def render(loras: Sequence[str], prompts: Sequence[str], seed: int, progress: Progress | None) -> list[Image.Image]:
        size = engine.native_resolution
        frame = Image.new("RGB", (size, size), (128, 128, 128))
        mask = Image.new("L", (size, size), 255)
        settings = SwapSettings(strength=1.0, steps=steps, seed=seed, padding=0.0, color_match=False)
        request = SwapRequest(frame, settings=settings, mask=mask)
        count = len(loras) * len(prompts)  # bounded by the checkpoints on disk, not by a visitor
        results = sweeps.sweep(engine, request, loras=loras, prompts=prompts, progress=progress, limit=count)
        return [result.image for result in results]

    return render


def _as_samples(progress: Callable[[int, int], None], before: int, count: int, total: int) -> Progress:
    """One sweep's steps reported as samples of the whole ranking (``count`` of them in this sweep)."""
    return lambda step, steps: progress(before + step * count // max(steps, 1), total)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
