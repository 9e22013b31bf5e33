"""Identity distance: the same person is closer than another one, on real photos."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.errors import NoFaceError
from faceswap_core.faces import find_face
from faceswap_core.faces.identity import IdentityScorer, face_descriptor


@pytest.fixture(scope="module")
def descriptors(seed_sources: list[Path], seed_targets: dict[str, Path]) -> dict[str, np.ndarray]:
    photos = {p.stem: p for p in seed_sources} | {letter: seed_targets[letter] for letter in "ABC"}
    return {name: face_descriptor(path) for name, path in photos.items()}


def test_descriptor_is_stable_across_scale(astronaut: Image.Image) -> None:
    small = face_descriptor(astronaut)
    assert small.shape == (128,) and np.isfinite(small).all()
    big = face_descriptor(astronaut.resize((1400, 1400), Image.BICUBIC))
    assert np.linalg.norm(small - big) < 0.2
    face = find_face(astronaut)
    assert np.allclose(face_descriptor(astronaut, face), small)


def test_metric_separates_source_person_from_target_person(
    descriptors: dict[str, np.ndarray], seed_sources: list[Path]
) -> None:
    sources = [p.stem for p in seed_sources]
    targets = ["A", "B", "C"]

    def dist(a: str, b: str) -> float:
        return float(np.linalg.norm(descriptors[a] - descriptors[b]))

    # Leave-one-out: a source photo against the other sources, as a swap result would be scored.
    within_sources = np.mean([np.mean([dist(s, o) for o in sources if o != s]) for s in sources])
    for target in targets:
        to_sources = np.mean([dist(target, s) for s in sources])
        assert within_sources < to_sources - 0.03
        assert max(dist(target, o) for o in targets if o != target) < to_sources - 0.1
    # Every photo's nearest neighbour shows the same person.
    for name in sources + targets:
        nearest = min((other for other in descriptors if other != name), key=lambda other: dist(name, other))
        assert (nearest in targets) == (name in targets), f"{name} is nearest to {nearest}"


def test_scorer_on_seed_photos(seed_sources: list[Path], seed_targets: dict[str, Path]) -> None:
    sources = IdentityScorer(seed_sources)
    targets = IdentityScorer([seed_targets["A"], seed_targets["C"]])
    assert len(sources.descriptors) == len(seed_sources) and not sources.skipped
    # The small (55 px) face of target B is scored closer to its own person than to the source person.
    assert targets.distance(seed_targets["B"]) < sources.distance(seed_targets["B"]) - 0.1


def test_scorer_skips_faceless_references(astronaut: Image.Image, tmp_path: Path) -> None:
    from skimage import data

    coffee = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(coffee)
    scorer = IdentityScorer([astronaut, coffee])
    assert len(scorer.descriptors) == 1 and scorer.skipped[0][0] == str(coffee)
    assert scorer.distance(astronaut) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(NoFaceError, match="none of the 1 reference"):
        IdentityScorer([coffee])
    with pytest.raises(NoFaceError, match="no face"):
        scorer.distance(coffee)


def test_descriptors_are_deterministic(descriptors: dict[str, np.ndarray], seed_targets: dict[str, Path]) -> None:
    assert np.allclose(face_descriptor(seed_targets["A"]), descriptors["A"])
    assert all(np.linalg.norm(a - b) > 0 for a, b in itertools.combinations(descriptors.values(), 2))
