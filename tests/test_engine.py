"""The engine on the tiny model: exact paste-back, sizes, seeds, LoRA switching, threads, cancel, ranking."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.engine import Engine, SwapResult
from faceswap_core.errors import CancelledError, ModelLoadError, UnsafeWeightsError
from faceswap_core.images import load_image
from faceswap_core.settings import ModelSpec, SwapSettings

FAST = SwapSettings(steps=8, seed=7)


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lora_weights")
    make_test_lora(tiny_model_dir, root / "alice", seed=1)
    make_test_lora(tiny_model_dir, root / "bob", seed=2)
    return root


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, lora_dir: Path) -> Engine:
    return Engine(ModelSpec(str(tiny_model_dir), device="cpu"), lora_dir=str(lora_dir))


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def _pixels(result: SwapResult | Image.Image) -> np.ndarray:
    return np.asarray(result.image if isinstance(result, SwapResult) else result).astype(np.int16)


def _assert_outside_mask_unchanged(original: Image.Image, result: SwapResult) -> None:
    assert result.image.size == original.size and result.image.mode == "RGB"
    outside = np.asarray(result.mask) == 0
    assert np.array_equal(np.asarray(original)[outside], np.asarray(result.image)[outside])
    assert (np.asarray(original) != np.asarray(result.image)).any()


def test_auto_mask_swap_keeps_every_pixel_outside_the_mask(engine: Engine, astronaut: Image.Image) -> None:
    result = engine.swap(astronaut, settings=FAST)
    _assert_outside_mask_unchanged(astronaut, result)
    record = result.record
    [face] = record["faces"]
    assert face["seed"] == 7 and face["mask"] == "auto" and face["face"] == 0 and record["resolution"] == 64
    assert face["steps"] == 8 and record["base_model"] == engine.base_model
    assert record["image_size"] == [512, 512] and face["lora"] is None and face["adapters"] == []
    assert {"prepare_s", "inference_s", "blend_s", "total_s"} <= record["timings"].keys()


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((203, 157), (150, 100, 200, 150)),  # odd size, mask at the corner: the crop is shifted inside
        ((203, 157), (20, 10, 190, 150)),  # crop larger than the image: filled by reflection
        ((33, 211), (2, 90, 30, 120)),  # thin image
    ],
)
def test_given_mask_odd_sizes(engine: Engine, size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    image = _noise(*size)
    result = engine.swap(image, mask=_box_mask(size, box), settings=FAST)
    _assert_outside_mask_unchanged(image, result)
    x0, y0, x1, y1 = result.record["faces"][0]["crop_box"]
    assert x1 - x0 == y1 - y0 and x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]


def test_exif_rotated_photo_comes_back_upright_at_full_size(
    engine: Engine, astronaut: Image.Image, tmp_path: Path
) -> None:
    stored = astronaut.crop((0, 0, 512, 400)).rotate(90, expand=True)  # as a phone stores a portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    upright = load_image(path)
    assert upright.size == (512, 400)
    result = engine.swap(path, settings=FAST)
    _assert_outside_mask_unchanged(upright, result)


def test_same_seed_same_result_and_random_seed_is_recorded(engine: Engine) -> None:
    image, mask = _noise(96, 80), _box_mask((96, 80), (30, 20, 70, 60))
    first = engine.swap(image, mask=mask, settings=FAST)
    again = engine.swap(image, mask=mask, settings=FAST)
    assert np.array_equal(_pixels(first), _pixels(again))
    other = engine.swap(image, mask=mask, settings=SwapSettings(steps=8, seed=8))
    assert not np.array_equal(_pixels(first), _pixels(other))
    random = engine.swap(image, mask=mask, settings=SwapSettings(steps=8))
    replay = engine.swap(image, mask=mask, settings=SwapSettings(steps=8, seed=random.record["faces"][0]["seed"]))
    assert np.array_equal(_pixels(random), _pixels(replay))


def test_lora_changes_result_and_switching_does_not_leak(engine: Engine) -> None:
    image, mask = _noise(96, 96, seed=3), _box_mask((96, 96), (20, 20, 76, 76))

    def run(lora: str | None, scale: float = 1.0) -> np.ndarray:
        settings = SwapSettings(steps=8, seed=5, lora=lora, lora_scale=scale, color_match=False)
        return _pixels(engine.swap(image, mask=mask, settings=settings))

    plain = run(None)
    alice = run("alice")
    bob = run("bob")
    assert not np.array_equal(plain, alice) and not np.array_equal(alice, bob)
    assert np.array_equal(run("alice"), alice)  # A -> B -> A is A fresh
    assert np.array_equal(run(None), plain)  # "no LoRA" really disables the adapters
    assert not np.array_equal(run("alice", 0.5), alice)
    assert np.array_equal(run("bob"), bob)


def test_unknown_or_pickle_lora_is_refused(engine: Engine, lora_dir: Path) -> None:
    image, mask = _noise(64, 64), _box_mask((64, 64), (16, 16, 48, 48))
    with pytest.raises(ModelLoadError, match="not found"):
        engine.swap(image, mask=mask, settings=SwapSettings(steps=8, lora="carol"))
    pickle = lora_dir.parent / "evil.pt"
    pickle.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeWeightsError):
        engine.swap(image, mask=mask, settings=SwapSettings(steps=8, lora=str(pickle)))


def test_threads_with_different_loras_match_sequential_runs(engine: Engine) -> None:
    image, mask = _noise(80, 80, seed=4), _box_mask((80, 80), (20, 20, 60, 60))
    jobs = [("alice", 1), ("bob", 2), (None, 3), ("alice", 4), ("bob", 5), (None, 6)]

    def settings(lora: str | None, seed: int) -> SwapSettings:
        return SwapSettings(steps=8, seed=seed, lora=lora, color_match=False)

    expected = [_pixels(engine.swap(image, mask=mask, settings=settings(*job))) for job in jobs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(indexes: list[int]) -> None:
        try:
            for index in indexes:
                results[index] = _pixels(engine.swap(image, mask=mask, settings=settings(*jobs[index])))
        except BaseException as err:  # surfaced in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=([i for i in range(len(jobs)) if i % 2 == k],)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index, pixels in enumerate(expected):
        assert np.array_equal(results[index], pixels), f"job {jobs[index]} differs when run in a thread"


def test_progress_and_cancel(engine: Engine) -> None:
    image, mask = _noise(64, 64), _box_mask((64, 64), (16, 16, 48, 48))
    steps: list[tuple[int, int]] = []
    engine.swap(
        image, mask=mask, settings=SwapSettings(steps=10, strength=0.5, seed=1), progress=lambda *s: steps.append(s)
    )
    assert steps == [(i, 5) for i in range(1, 6)]
    cancel = threading.Event()

    def cancel_after_two(step: int, total: int) -> None:
        if step == 2:
            cancel.set()

    with pytest.raises(CancelledError):
        engine.swap(image, mask=mask, settings=FAST, progress=cancel_after_two, cancel=cancel)
    assert engine.swap(image, mask=mask, settings=FAST).image.size == (64, 64)  # still usable


def test_search_keeps_order_without_references(engine: Engine) -> None:
    image, mask = _noise(64, 64), _box_mask((64, 64), (16, 16, 48, 48))
    results = engine.search(image, mask=mask, settings=FAST, strengths=[0.6, 0.3], seeds=[1, 2])
    assert [(r.record["faces"][0]["seed"], r.record["faces"][0]["strength"]) for r in results] == [
        (1, 0.6),
        (1, 0.3),
        (2, 0.6),
        (2, 0.3),
    ]
    assert all(r.identity_distance is None for r in results)


def test_search_ranks_by_real_identity_distance(
    engine: Engine, seed_targets: dict[str, Path], seed_sources: list[Path]
) -> None:
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.identity import IdentityScorer

    target = seed_targets["B"]
    references = sorted(seed_sources, key=lambda path: path.stat().st_size)[:2]  # the smallest: fast
    results = engine.search(target, settings=FAST, strengths=[0.3, 0.5, 0.8, 1.0], references=references)
    assert len(results) == 4
    scorer = IdentityScorer(references)
    face = find_face(load_image(target))
    independent = [scorer.distance(r.image, face) for r in results]
    assert [r.identity_distance for r in results] == pytest.approx(independent)
    assert independent == sorted(independent)
    assert [r.record["rank"] for r in results] == [0, 1, 2, 3]


def test_nine_channel_inpainting_unet(tiny_inpaint_model_dir: Path) -> None:
    engine = Engine(ModelSpec(str(tiny_inpaint_model_dir), device="cpu"))
    image = _noise(120, 90)
    result = engine.swap(image, mask=_box_mask((120, 90), (40, 20, 90, 70)), settings=SwapSettings(steps=4, seed=1))
    _assert_outside_mask_unchanged(image, result)


def test_load_error_is_kept_for_the_ui(tmp_path: Path) -> None:
    engine = Engine(ModelSpec(str(tmp_path / "no-model"), device="cpu"))
    assert not engine.loaded and engine.load_error is None
    with pytest.raises(ModelLoadError):
        engine.load()
    assert engine.load_error and "no-model" in engine.load_error
    engine.release_gpu()


class _GpuPipelineDouble:
    """Stands in for a pipeline on a GPU: records where it is moved (no CUDA on CI)."""

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cuda", 0)
        self.moves: list[str] = []

    def to(self, device: object) -> _GpuPipelineDouble:
        import torch

        self.moves.append(str(device))
        self.device = torch.device(device)
        return self


def test_parked_moves_the_pipeline_off_the_gpu_and_back_while_holding_the_lock() -> None:
    pipeline = _GpuPipelineDouble()
    engine = Engine.from_pipeline(pipeline)
    seen_from_other_thread: list[bool] = []
    with pytest.raises(RuntimeError, match="training failed"), engine.parked():
        assert pipeline.device.type == "cpu"
        probe = threading.Thread(target=lambda: seen_from_other_thread.append(engine.lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        raise RuntimeError("training failed")
    assert seen_from_other_thread == [False]  # swaps wait while the GPU is lent out
    assert pipeline.moves == ["cpu", "cuda:0"] and pipeline.device.type == "cuda"
