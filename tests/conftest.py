"""Shared fixtures: real face photos (skimage's astronaut, the shared seed photos) and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

SEED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed_faces"

# torch's OpenMP threads spin against each other on a busy 2-core box (tiny-model steps measured
# 3-10x slower with 2 threads than with 1); set before torch is imported, an explicit value wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    """A real, freely usable face photo (NASA, shipped with scikit-image)."""
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def seed_sources() -> list[Path]:
    """The 7 photos of the source person, when ../shared is present."""
    photos = sorted((SEED_FACES / "source").glob("*.jpg"))
    if not photos:
        pytest.skip("shared seed photos not present")
    return photos


@pytest.fixture(scope="session")
def seed_targets() -> dict[str, Path]:
    """The seed target images by letter ("A", "B", ...), when ../shared is present."""
    targets = {p.stem.removeprefix("target_"): p for p in sorted((SEED_FACES / "targets").glob("target_*.png"))}
    if not targets:
        pytest.skip("shared seed photos not present")
    return targets


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SDXL inpainting pipeline saved with save_pretrained (4-channel UNet)."""
    from faceswap_core.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_inpaint_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with a 9-channel inpainting UNet, like diffusers/stable-diffusion-xl-1.0-inpainting-0.1."""
    from faceswap_core.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl-9ch"), inpaint_unet=True)
