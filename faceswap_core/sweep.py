"""Sweeps: one face repainted with several strengths, seeds, prompts or LoRAs (a person's checkpoints), ranked
by likeness to photos of the person. Try strengths is a sweep; so are the samples that choose a checkpoint
after training (``training/ranking.py``: checkpoints x sample prompts at one seed, scored there).

The request is planned once (faces, mask, crop); each candidate only changes the settings of that plan.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from faceswap_core.engine import Progress, SwapResult, offset_progress
from faceswap_core.errors import NoFaceError, SettingsError
from faceswap_core.requests import checked_text
from faceswap_core.settings import MAX_STRENGTH_CANDIDATES, STRENGTH

if TYPE_CHECKING:
    from PIL import Image

    from faceswap_core.engine import Engine
    from faceswap_core.faces.detect import Face
    from faceswap_core.images import ImageInput
    from faceswap_core.requests import SwapRequest

MAX_CANDIDATES = 4 * MAX_STRENGTH_CANDIDATES  # strengths x seeds x prompts x LoRAs: each candidate is a whole swap
CANDIDATE_SIZE = 256  # px: a candidate's face crop, small enough to compare several side by side


def sweep(
    engine: Engine,
    request: SwapRequest,
    *,
    face: int | None = None,
    strengths: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    loras: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
    references: Sequence[ImageInput] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    limit: int = MAX_CANDIDATES,
) -> list[SwapResult]:
    """Every LoRA x prompt x seed x strength on one face of the request, best first when ``references`` are given.

    ``face`` picks the face among several the request names (their shared mask is split among all of
    them first, so the candidates repaint exactly that face's share); default the first.

    Without references the candidates keep their input order. One seed (the request's) is shared by
    every candidate unless ``seeds`` are given, so they differ only in what is swept. ``limit`` bounds
    the candidates (a public endpoint keeps the default; ranking a person's checkpoints passes its own).
    """
    prepared = engine.plan(request)
    chosen = next((i for i, target in enumerate(prepared.targets) if target.face == face), 0)
    prepared = replace(prepared, regions=[prepared.regions[chosen]], targets=[prepared.targets[chosen]])
    base = prepared.targets[0].settings
    candidates = [
        replace(base, strength=float(strength), seed=int(seed), lora=lora, prompt=prompt)
        for lora in (loras or [base.lora])
        for prompt in (prompts or [base.prompt])
        for seed in (seeds or [base.seed])
        for strength in (strengths or [base.strength])
    ]
    if len(candidates) > limit:
        raise SettingsError(f"{len(candidates)} candidates; a sweep tries at most {limit}")
    for candidate in candidates:
        candidate.validate()
    scorer, scored_face = None, None
    if references:
        from faceswap_core.faces.identity import IdentityScorer

        scorer = IdentityScorer(references)
        region = prepared.regions[0]
        scored_face = region.face or _face_under_mask(prepared.image, region.mask, engine.landmarks)
    counts = [engine.steps_run(candidate) for candidate in candidates]
    total, done = sum(counts), 0
    results: list[SwapResult] = []
    for candidate, count in zip(candidates, counts, strict=True):
        report = None if progress is None else offset_progress(progress, done, total)
        result = engine.repaint(prepared, [candidate], progress=report, cancel=cancel)
        done += count
        if scorer is not None:
            result.identity_distance = _score(scorer, result.image, scored_face)
            result.record["identity_distance"] = result.identity_distance
        results.append(result)
    if scorer is not None:
        results.sort(key=lambda r: (r.identity_distance is None, r.identity_distance or 0.0))
    for rank, result in enumerate(results):
        result.record["rank"] = rank
    return results


def _face_under_mask(image: Image.Image, mask: Image.Image, landmarks: str) -> Face | None:
    """With a hand-drawn mask, the face to score is the one the mask covers most."""
    from faceswap_core.faces.detect import detect_faces
    from faceswap_core.faces.masks import mask_box

    x0, y0, x1, y1 = mask_box(mask)
    best, best_overlap = None, 0.0
    for face in detect_faces(image, backend=landmarks):
        fx0, fy0, fx1, fy1 = face.box
        overlap = max(0.0, min(x1, fx1) - max(x0, fx0)) * max(0.0, min(y1, fy1) - max(y0, fy0))
        if overlap > best_overlap:
            best, best_overlap = face, overlap
    return best


def _score(scorer: Any, image: Image.Image, face: Face | None) -> float | None:
    """Identity distance of the swapped face, measured where the face was (the swap keeps its place)."""
    try:
        return float(scorer.distance(image, face))
    except NoFaceError:
        return None


def parse_strengths(text: str, keep_expression: float = 0.0) -> list[float]:
    """``"0.3, 0.4 0.5"`` -> [0.3, 0.4, 0.5]; each must be a valid strength, and at most MAX_STRENGTH_CANDIDATES
    (checked before any work: each one is a full swap).

    Empty: the default candidates, higher ones when Keep expression is on.
    """
    from faceswap_core.conditioning.controlnet import strengths_for

    parts = [p for p in checked_text(text, "strengths").replace(",", " ").split() if p]
    if not parts:
        return list(strengths_for(keep_expression)[1])
    if len(parts) > MAX_STRENGTH_CANDIDATES:
        raise SettingsError(
            f"{len(parts)} strengths were given; try at most {MAX_STRENGTH_CANDIDATES} at once, e.g. 0.3, 0.4, 0.5, 0.6"
        )
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise SettingsError(f"strengths: {part!r} is not a number; write them like 0.3, 0.4, 0.5") from None
        if not math.isfinite(value):
            raise SettingsError(f"strength must be a finite number, got {value}")
        STRENGTH.check("strength", value)
        values.append(value)
    return values


def face_crop(result: SwapResult, size: int = CANDIDATE_SIZE) -> Image.Image:
    """The candidate around the face it repainted (not a centre crop that may cut the face off)."""
    x0, y0, x1, y1 = result.record["faces"][0]["crop_box"]
    crop = result.image.crop((max(0, x0), max(0, y0), min(result.image.width, x1), min(result.image.height, y1)))
    crop.thumbnail((size, size))
    return crop
