"""The engine: one resident SDXL inpainting pipeline per process, the LoRA picker, face swap and strength search.

The app and the command line both build one :class:`Engine` and pass it around; the pipeline is
loaded once. All GPU work (switching LoRAs included) runs under ``Engine.lock``, so concurrent
requests are serialised and none can see another's LoRA or settings. Face detection, masks and
the paste-back are CPU work and run outside the lock.
"""

from __future__ import annotations

import gc
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceswap_core import __version__
from faceswap_core.blend import Box, crop_square, match_colors, paste_back, square_crop_box
from faceswap_core.errors import CancelledError, FaceswapError, ModelLoadError, NoFaceError
from faceswap_core.images import ImageInput, load_image
from faceswap_core.loras import LoraInfo, LoraRegistry
from faceswap_core.settings import DEFAULT_BASE_MODEL, MAX_SEED, SEARCH_STRENGTHS, MaskSettings, SwapSettings, as_dict

if TYPE_CHECKING:
    import torch

    from faceswap_core.faces.detect import Face

Progress = Callable[[int, int], None]
MAX_CACHED_ADAPTERS = 8  # loaded LoRAs kept on the model; the least recently used is dropped beyond this


@dataclass
class SwapResult:
    """A swapped image at full size, with the record needed to reproduce it."""

    image: Image.Image
    record: dict[str, Any]
    identity_distance: float | None = None
    mask: Image.Image | None = None  # the full-size mask that was used (255 = replaced)


@dataclass
class PreparedSwap:
    """The CPU-side inputs of a swap: found once, reused by every candidate of a search."""

    image: Image.Image
    mask: Image.Image
    face: Face | None
    crop_box: Box
    mask_source: str
    prepare_s: float
    crop: Image.Image = field(repr=False)
    crop_mask: Image.Image = field(repr=False)


class Engine:
    """Holds the pipeline and the LoRA registry; ``swap`` and ``search`` are safe to call from many threads."""

    def __init__(
        self,
        base_model: str = DEFAULT_BASE_MODEL,
        *,
        device: str | None = "auto",
        dtype: torch.dtype | None = None,
        vae: str | None = None,
        low_vram: bool = False,
        lora_dir: str = "lora_weights",
        base_config: str | None = None,
    ) -> None:
        self.base_model = base_model
        self.base_config = base_config  # diffusers folder describing a single-file base (offline use)
        self.device = device
        self.dtype = dtype
        self.vae = vae
        self.low_vram = low_vram
        self.loras = LoraRegistry(lora_dir)
        self.lock = threading.RLock()
        self.load_error: str | None = None
        self._pipeline: Any = None
        self._adapters: OrderedDict[tuple[str, int, int], str] = OrderedDict()  # (file, mtime, size) -> name
        self._adapter_count = 0

    @classmethod
    def from_pipeline(
        cls, pipeline: Any, *, base_model: str = "in-memory pipeline", lora_dir: str = "lora_weights"
    ) -> Engine:
        """An engine around a pipeline built in memory (benchmarks with random full-size weights, tests)."""
        engine = cls(base_model, lora_dir=lora_dir)
        engine._pipeline = pipeline
        return engine

    # --- loading --------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    @property
    def pipeline(self) -> Any:
        """The loaded pipeline (loading it on first use)."""
        return self.load()

    def load(self) -> Any:
        """Load the base model once; on failure keep the message in ``load_error`` (mask tools still work)."""
        with self.lock:
            if self._pipeline is None:
                from faceswap_core.models import load_inpaint_pipeline

                try:
                    self._pipeline = load_inpaint_pipeline(
                        self.base_model,
                        device=self.device,
                        dtype=self.dtype,
                        vae=self.vae,
                        low_vram=self.low_vram,
                        config=self.base_config,
                    )
                except FaceswapError as err:
                    self.load_error = str(err)
                    self.release_gpu()
                    raise
                except Exception as err:  # e.g. out of GPU memory while moving the weights: still one line
                    self.release_gpu()
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                    self.load_error = f"base model {self.base_model} could not be loaded: {first}"
                    raise ModelLoadError(self.load_error) from err
                self.load_error = None
            return self._pipeline

    @property
    def native_resolution(self) -> int:
        from faceswap_core.models import native_resolution

        return native_resolution(self.pipeline)

    def release_gpu(self) -> None:
        """Give cached GPU memory back (after errors, or when the app is asked to free memory)."""
        gc.collect()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()

    @contextmanager
    def parked(self) -> Iterator[None]:
        """Hold the GPU for other work (training): the pipeline waits in CPU memory, swaps wait on the lock.

        The SDXL pipeline takes ~7 GB of VRAM in fp16, which would not fit beside LoRA training on a
        24 GB card; it goes back to its device afterwards, even when the work failed.
        """
        with self.lock:
            pipeline = self._pipeline
            device = getattr(pipeline, "device", None)
            park = pipeline is not None and not self.low_vram and device is not None and device.type != "cpu"
            if park:
                pipeline.to("cpu")
            self.release_gpu()
            try:
                yield
            finally:
                if park:
                    pipeline.to(device)

    # --- inputs ---------------------------------------------------------------------------------
    def prepare(
        self,
        image: ImageInput,
        *,
        mask: ImageInput | None = None,
        settings: SwapSettings,
        mask_settings: MaskSettings | None = None,
        resolution: int | None = None,
    ) -> PreparedSwap:
        """Load the image, find the face and mask, and cut the square crop the model will see."""
        from faceswap_core.faces.masks import face_mask, mask_box, normalize_mask

        started = time.perf_counter()
        settings.validate()
        picture = load_image(image, name="target image")
        face = None
        if mask is None:
            from faceswap_core.faces.detect import find_face

            grow_feather = mask_settings or MaskSettings()
            grow_feather.validate()
            face = find_face(picture, settings.face_index)
            full_mask = face_mask(picture.size, face, grow=grow_feather.grow, feather=grow_feather.feather)
            source = "auto"
        else:
            full_mask = normalize_mask(mask, picture.size)
            source = "given"
        box = square_crop_box(mask_box(full_mask), settings.padding, picture.size)
        size = resolution or self.native_resolution
        crop = crop_square(picture, box).resize((size, size), Image.LANCZOS)
        crop_mask = crop_square(full_mask, box, fill_mode="constant").resize((size, size), Image.BILINEAR)
        return PreparedSwap(
            picture, full_mask, face, box, source, time.perf_counter() - started, crop=crop, crop_mask=crop_mask
        )

    # --- swapping -------------------------------------------------------------------------------
    def swap(
        self,
        image: ImageInput | PreparedSwap,
        *,
        mask: ImageInput | None = None,
        settings: SwapSettings = SwapSettings(),
        mask_settings: MaskSettings | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SwapResult:
        """Replace the face: crop, inpaint at native resolution, colour-match, paste back through the mask.

        ``image`` may be a :class:`PreparedSwap` from :meth:`prepare` to skip detection (as search does).
        """
        started = time.perf_counter()
        settings.validate()
        pipeline = self.pipeline
        prepared = (
            image
            if isinstance(image, PreparedSwap)
            else self.prepare(image, mask=mask, settings=settings, mask_settings=mask_settings)
        )
        lora = self.loras.resolve(settings.lora) if settings.lora else None
        seed = secrets.randbelow(MAX_SEED + 1) if settings.seed is None else settings.seed
        generated, timings = self._inpaint(pipeline, prepared, settings, seed, lora, progress, cancel)
        blend_started = time.perf_counter()
        if settings.color_match:
            generated = Image.fromarray(
                match_colors(np.asarray(generated), np.asarray(prepared.crop), np.asarray(prepared.crop_mask))
            )
        result = paste_back(prepared.image, generated, prepared.mask, prepared.crop_box)
        timings["prepare_s"] = prepared.prepare_s
        timings["blend_s"] = time.perf_counter() - blend_started
        timings["total_s"] = time.perf_counter() - started
        record = self._record(prepared, replace(settings, seed=seed), lora, timings)
        return SwapResult(result, record, None, prepared.mask)

    def _inpaint(
        self,
        pipeline: Any,
        prepared: PreparedSwap,
        settings: SwapSettings,
        seed: int,
        lora: LoraInfo | None,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> tuple[Image.Image, dict[str, float]]:
        """The GPU part, under the lock: set this request's LoRA state, then run the pipeline on the crop."""
        import torch

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if cancel is not None and cancel.is_set():
                raise CancelledError("the swap was cancelled")
            if progress is not None:
                progress(step + 1, pipe.num_timesteps)
            return tensors

        size = prepared.crop.width
        with self.lock:
            if cancel is not None and cancel.is_set():
                raise CancelledError("the swap was cancelled")
            waited = time.perf_counter()
            self._use_lora(pipeline, lora, settings.lora_scale)
            lora_s = time.perf_counter() - waited
            try:
                with torch.inference_mode():
                    output = pipeline(
                        prompt=settings.prompt,
                        negative_prompt=settings.negative_prompt or None,
                        image=prepared.crop,
                        mask_image=prepared.crop_mask,
                        height=size,
                        width=size,
                        strength=settings.strength,
                        num_inference_steps=settings.steps,
                        guidance_scale=settings.guidance,
                        generator=torch.Generator(device="cpu").manual_seed(seed),
                        callback_on_step_end=on_step_end,
                    )
            except Exception as err:  # cancelled, out of memory or a bug: free what the run held first
                if self.low_vram:
                    pipeline.maybe_free_model_hooks()
                self.release_gpu()
                if isinstance(err, torch.cuda.OutOfMemoryError):
                    raise FaceswapError(
                        "the GPU ran out of memory; start with --low-vram, close other GPU programs or use fewer steps"
                    ) from None
                raise
            inference_s = time.perf_counter() - waited - lora_s
        return output.images[0], {"lora_s": lora_s, "inference_s": inference_s}

    def _use_lora(self, pipeline: Any, lora: LoraInfo | None, scale: float) -> None:
        """Make exactly ``lora`` (or none) active on the pipeline; adapters stay loaded, cached by file."""
        if lora is None:
            if self._adapters:
                pipeline.disable_lora()
            return
        stat = lora.path.stat()
        key = (str(lora.path.resolve()), stat.st_mtime_ns, stat.st_size)
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = self._load_adapter(pipeline, lora)
            self._adapters[key] = adapter
            while len(self._adapters) > MAX_CACHED_ADAPTERS:
                _, oldest = self._adapters.popitem(last=False)
                pipeline.delete_adapters(oldest)
        self._adapters.move_to_end(key)
        pipeline.enable_lora()
        pipeline.set_adapters([adapter], adapter_weights=[scale])

    def _load_adapter(self, pipeline: Any, lora: LoraInfo) -> str:
        from faceswap_core.loras import load_lora_into

        self._adapter_count += 1
        adapter = f"lora_{self._adapter_count}"
        try:
            with warnings.catch_warnings():  # peft warns on every second adapter; several are the point here
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                load_lora_into(pipeline, lora.path, adapter)  # from memory: the file may be overwritten later
        except FaceswapError:
            raise
        except Exception as err:  # diffusers/peft raise ValueError, KeyError, RuntimeError on a mismatched LoRA
            if adapter in _loaded_adapter_names(pipeline):
                pipeline.delete_adapters(adapter)
            self.release_gpu()
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ModelLoadError(
                f"LoRA {lora.name} ({lora.path}) does not fit base model {self.base_model}: {first}"
            ) from err
        return adapter

    def _record(
        self, prepared: PreparedSwap, settings: SwapSettings, lora: LoraInfo | None, timings: dict[str, float]
    ) -> dict[str, Any]:
        pipeline = self._pipeline
        return {
            "seed": settings.seed,
            "settings": as_dict(settings),
            "base_model": self.base_model,
            "vae": self.vae,
            "lora": lora.name if lora else None,
            "lora_path": str(lora.path) if lora else None,
            "lora_scale": settings.lora_scale if lora else None,
            "mask": prepared.mask_source,
            "image_size": list(prepared.image.size),
            "crop_box": list(prepared.crop_box),
            "resolution": prepared.crop.width,
            "device": str(getattr(pipeline, "device", "")),
            "dtype": str(getattr(pipeline, "dtype", "")).removeprefix("torch."),
            "timings": {name: round(value, 4) for name, value in timings.items()},
            "version": __version__,
        }

    # --- strength search ------------------------------------------------------------------------
    def search(
        self,
        image: ImageInput,
        *,
        mask: ImageInput | None = None,
        settings: SwapSettings = SwapSettings(),
        strengths: Sequence[float] | None = SEARCH_STRENGTHS,
        seeds: Sequence[int] | None = None,
        references: Sequence[ImageInput] | None = None,
        mask_settings: MaskSettings | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[SwapResult]:
        """Try every strength x seed; rank by identity distance to ``references`` (best first) when given.

        Without references the candidates keep their input order. One seed is shared by all strengths
        when none is given, so the candidates differ only in strength.
        """
        strength_list = list(strengths) if strengths else [settings.strength]
        if seeds:
            seed_list: list[int] = list(seeds)
        else:
            seed_list = [secrets.randbelow(MAX_SEED + 1) if settings.seed is None else settings.seed]
        candidates = [replace(settings, strength=float(s), seed=int(seed)) for seed in seed_list for s in strength_list]
        for candidate in candidates:
            candidate.validate()
        scorer = None
        if references:
            from faceswap_core.faces.identity import IdentityScorer

            scorer = IdentityScorer(references)
        prepared = self.prepare(image, mask=mask, settings=settings, mask_settings=mask_settings)
        face = prepared.face if prepared.face is not None else _face_under_mask(prepared)
        steps = [max(1, int(c.steps * c.strength)) for c in candidates]
        total, done = sum(steps), 0
        results: list[SwapResult] = []
        for candidate, count in zip(candidates, steps, strict=True):
            report = None if progress is None else _offset_progress(progress, done, total)
            result = self.swap(prepared, settings=candidate, progress=report, cancel=cancel)
            done += count
            if scorer is not None:
                result.identity_distance = _score(scorer, result.image, face)
                result.record["identity_distance"] = result.identity_distance
            results.append(result)
        if scorer is not None:
            results.sort(key=lambda r: (r.identity_distance is None, r.identity_distance or 0.0))
        for rank, result in enumerate(results):
            result.record["rank"] = rank
        return results


def _offset_progress(progress: Progress, done: int, total: int) -> Progress:
    """Report a candidate's steps as steps of the whole search."""
    return lambda step, _count: progress(min(done + step, total), total)


def _face_under_mask(prepared: PreparedSwap) -> Face | None:
    """With a hand-drawn mask, the face to score is the one the mask covers most."""
    from faceswap_core.faces.detect import detect_faces
    from faceswap_core.faces.masks import mask_box

    x0, y0, x1, y1 = mask_box(prepared.mask)
    best, best_overlap = None, 0.0
    for face in detect_faces(prepared.image):
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


def _loaded_adapter_names(pipeline: Any) -> set[str]:
    try:
        return {name for names in pipeline.get_list_adapters().values() for name in names}
    except (AttributeError, ValueError):
        return set()
