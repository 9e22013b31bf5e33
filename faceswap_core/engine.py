"""The engine: one resident SDXL inpainting pipeline per process, the LoRA picker, face swap and strength search.

The app and the command line both build one :class:`Engine` and pass it around; the pipeline is
loaded once. All GPU work (switching LoRAs included) runs under ``Engine.lock``, so concurrent
requests are serialised and none can see another's LoRA or settings. Face detection, masks and
the paste-back are CPU work and run outside the lock.
"""

from __future__ import annotations

import gc
import os
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceswap_core import __version__
from faceswap_core.blend import match_colors, paste_back
from faceswap_core.conditioning import Conditioning, Plan, default_conditionings, plan_for
from faceswap_core.errors import CancelledError, FaceswapError, ModelLoadError, NoFaceError, SettingsError, first_line
from faceswap_core.images import ImageInput, load_image
from faceswap_core.loras import LoraInfo, LoraRegistry
from faceswap_core.regions import Region, cut, face_region, mask_region, split_mask
from faceswap_core.settings import (
    DEFAULT_FACE_BACKEND,
    FACE_BACKENDS,
    MAX_FACES,
    MAX_SEED,
    SEARCH_STRENGTHS,
    MaskSettings,
    ModelSpec,
    SwapSettings,
    as_dict,
)

if TYPE_CHECKING:
    import torch

    from faceswap_core.conditioning.controlnet import FaceControl
    from faceswap_core.faces.detect import Face
    from faceswap_core.faces.parser import FaceParser
    from faceswap_core.fast import FastMode
    from faceswap_core.identity_adapter import IdentityAdapter
    from faceswap_core.requests import SwapRequest

Progress = Callable[[int, int], None]
MAX_CACHED_ADAPTERS = 8  # loaded LoRAs kept on the model; the least recently used is dropped beyond this


@dataclass
class SwapResult:
    """A swapped image at full size, with the record needed to reproduce it face by face."""

    image: Image.Image
    record: dict[str, Any]
    identity_distance: float | None = None
    mask: Image.Image | None = None  # the full-size union of the masks that were used (255 = replaced)
    painted: Image.Image | None = None  # the request's own mask, as given (kept in the PNG so replay can use it)


@dataclass(frozen=True)
class FaceTarget:
    """One face to repaint and how: which detected face (or none, when a mask alone says where) and its settings.

    ``face`` is an index among the detected faces, largest first. With ``mask`` (full-size, 255 =
    replace) the mask decides where; ``face`` then only names the face it covers (record, scoring).
    """

    settings: SwapSettings = SwapSettings()
    face: int | None = 0
    mask: ImageInput | None = None
    person: str | None = None  # the person's name, for the record ("" = the base model; None = settings as given)


@dataclass
class PreparedSwap:
    """A swap's plan, made by CPU work alone: the photo, one region and target per face (settings seeded,
    people resolved), found once and reused by every candidate; the executor runs it on the pipeline."""

    image: Image.Image
    regions: list[Region]
    prepare_s: float
    targets: list[FaceTarget] = field(default_factory=list)
    request: SwapRequest | None = None  # the request it was planned from (seeded), for the record
    hashes: dict[str, str] = field(default_factory=dict)  # content hashes of the request's files, as used
    painted: Image.Image | None = None  # the request's shared mask at the photo's size
    landmarks: str | None = None  # the landmark backend that found the faces; None: the engine's


class Engine:
    """Holds the pipeline and the LoRA registry; ``swap`` and ``search`` are safe to call from many threads."""

    def __init__(
        self,
        model: ModelSpec | str = ModelSpec(),
        *,
        dtype: torch.dtype | None = None,
        lora_dir: str | os.PathLike = "lora_weights",
        allow_paths: bool = True,
        conditionings: Sequence[Conditioning] | None = None,
        landmarks: str = DEFAULT_FACE_BACKEND,
    ) -> None:
        """``allow_paths=False`` (the web app): a LoRA or person is a name in ``lora_dir``, never a path.
        ``conditionings``: the plug-ins that steer each face, in order (default: few-step, LoRA, image prompt).
        ``landmarks``: the landmark backend of every face this engine finds."""
        self.model = ModelSpec(base=model) if isinstance(model, str) else model
        self.model.validate()
        if landmarks not in FACE_BACKENDS:
            raise SettingsError(f"landmarks must be one of {', '.join(FACE_BACKENDS)}, got {landmarks!r}")
        self.landmarks = landmarks
        self.dtype = dtype
        self.loras = LoraRegistry(lora_dir, allow_paths=allow_paths)
        chosen = default_conditionings() if conditionings is None else conditionings
        self.conditionings: list[Conditioning] = list(chosen)
        self.lock = threading.RLock()
        self.load_error: str | None = None
        self._pipeline: Any = None
        self._adapters: OrderedDict[tuple[str, int, int], str] = OrderedDict()  # (file, mtime, size) -> name
        self._adapter_count = 0
        self._identity: IdentityAdapter | None = None
        self._identity_lock = threading.Lock()
        self._face_control: FaceControl | None = None

    def face_parser(self) -> FaceParser | None:
        """The server's learned occluder source (``--face-parser``), loaded (or downloaded) on first use."""
        from faceswap_core.faces.parser import load_parser

        return None if self.model.face_parser is None else load_parser(self.model.face_parser)

    @property
    def base_model(self) -> str:
        return self.model.base

    @classmethod
    def from_pipeline(
        cls, pipeline: Any, *, base_model: str = "in-memory pipeline", lora_dir: str | os.PathLike = "lora_weights"
    ) -> Engine:
        """An engine around a pipeline built in memory (benchmarks with random full-size weights, tests)."""
        engine = cls(base_model, lora_dir=lora_dir)
        engine._pipeline = pipeline
        return engine

    # --- loading --------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        """How many swaps this engine runs at once (one pipeline: one); the app's queue sends as many."""
        return 1

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
                    self._pipeline = load_inpaint_pipeline(self.model, dtype=self.dtype)
                except FaceswapError as err:
                    self.load_error = str(err)
                    self.release_gpu()
                    raise
                except Exception as err:  # e.g. out of GPU memory while moving the weights: still one line
                    self.release_gpu()
                    first = first_line(err)
                    self.load_error = f"base model {self.model.base} could not be loaded: {first}"
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
            park = pipeline is not None and not self.model.low_vram and device is not None and device.type != "cpu"
            if park:
                pipeline.to("cpu")
            self.release_gpu()
            try:
                yield
            finally:
                if park:
                    pipeline.to(device)

    # --- planning -----------------------------------------------------------------------------
    def plan(self, request: SwapRequest) -> PreparedSwap:
        """The CPU part of a request: load the photo, find its faces once, resolve the faces and people into
        per-face targets with a fixed seed, and cut one region per face. Serialisable; no GPU work."""
        from faceswap_core.people import People
        from faceswap_core.requests import needs_faces, pixel_hash, resolve

        started = time.perf_counter()
        request = request.validate().seeded()
        picture = load_image(request.image, name="target image")
        faces: list[Face] = []
        if needs_faces(request):
            from faceswap_core.faces.detect import detect_faces

            faces = detect_faces(picture, backend=request.landmarks or self.landmarks, name="target image")
        targets = resolve(request, faces, People(self.loras), picture)
        prepared = self.prepare(
            picture, targets, shared_mask=request.mask, mask_settings=request.mask_settings, faces=faces
        )
        prepared.request = request
        prepared.landmarks = request.landmarks or self.landmarks
        prepared.hashes["image"] = pixel_hash(picture)
        if prepared.painted is not None:
            prepared.hashes["mask"] = pixel_hash(prepared.painted)
        if request.reference_face is not None:
            prepared.hashes["reference_face"] = pixel_hash(load_image(request.reference_face, name="reference photo"))
        prepared.prepare_s = time.perf_counter() - started
        return prepared

    def run(
        self, request: SwapRequest, *, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> SwapResult:
        """Plan ``request`` and execute the plan: the one way every front end swaps.

        The record is the request (public form: files by name and hash) plus what happened.
        """
        started = time.perf_counter()
        return self._execute(self.plan(request), started, progress, cancel)

    def prepare(
        self,
        image: ImageInput,
        targets: Sequence[FaceTarget],
        *,
        shared_mask: ImageInput | None = None,
        mask_settings: MaskSettings | None = None,
        faces: list[Face] | None = None,
    ) -> PreparedSwap:
        """Load the image, find the faces the targets name (unless ``faces`` are given), and make one region
        per target (in order).

        ``shared_mask`` is one painted mask for all targets (what the editor gives): it is split among
        their faces, each painted pixel going to the nearest chosen face (:func:`split_mask`).
        """
        from faceswap_core.faces.masks import normalize_mask

        started = time.perf_counter()
        if not targets:
            raise SettingsError("choose at least one face to replace")
        if len(targets) > MAX_FACES:
            raise SettingsError(f"at most {MAX_FACES} faces can be replaced in one photo, got {len(targets)}")
        for target in targets:
            target.settings.validate()
            if target.face is not None and target.face < 0:
                raise SettingsError(f"face index must be 0 or more, got {target.face}")
        if shared_mask is not None and len(targets) > 1 and any(t.face is None for t in targets):
            raise SettingsError("a mask shared by several faces needs a face index for each of them")
        picture = load_image(image, name="target image")
        if faces is None:
            faces = []
            if any(target.face is not None for target in targets):
                from faceswap_core.faces.detect import detect_faces

                faces = detect_faces(picture, backend=self.landmarks, name="target image")
        masks: list[Image.Image | None] = [
            None if target.mask is None else normalize_mask(target.mask, picture.size) for target in targets
        ]
        painted = None if shared_mask is None else normalize_mask(shared_mask, picture.size)
        if painted is not None:
            if len(targets) == 1:
                masks = [painted]
            else:
                chosen = [_nth_face(faces, target.face or 0, given_mask=False) for target in targets]
                masks = list(split_mask(painted, [face for face in chosen if face is not None]))
        regions = []
        for target, mask in zip(targets, masks, strict=True):
            face = None if target.face is None else _nth_face(faces, target.face, given_mask=mask is not None)
            padding = target.settings.padding
            if mask is None:
                assert face is not None  # _nth_face raises when an automatic mask has no face
                regions.append(
                    face_region(
                        picture.size,
                        face,
                        face_index=target.face,
                        padding=padding,
                        mask_settings=mask_settings,
                        image=picture,
                        parser=self.face_parser(),
                    )
                )
            else:
                index = target.face if face is not None else None
                regions.append(mask_region(mask, padding=padding, face=face, face_index=index))
        seeded = [replace(target, settings=_with_seed(target.settings)) for target in targets]
        return PreparedSwap(picture, regions, time.perf_counter() - started, seeded, painted=painted)

    # --- swapping -------------------------------------------------------------------------------
    def swap(
        self,
        image: ImageInput,
        targets: Sequence[FaceTarget] | None = None,
        *,
        settings: SwapSettings = SwapSettings(),
        face: int | None = None,
        mask: ImageInput | None = None,
        mask_settings: MaskSettings | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SwapResult:
        """Repaint each target's face in turn, each on the result of the one before.

        Each face is cropped and upscaled to the model's native resolution on its own, inpainted with
        its own conditioning, colour-matched and blended back through its mask; every pixel outside
        the union of the masks is returned exactly as it came in. With ``targets``, ``mask`` is one
        painted mask shared among their faces. Without, one face: ``face`` (index, largest first;
        default the largest) with ``settings``, or the region ``mask`` covers.
        """
        started = time.perf_counter()
        shared_mask = mask
        if targets is None:
            targets, shared_mask = [_single_target(settings, face, mask)], None
        prepared = self.prepare(image, targets, shared_mask=shared_mask, mask_settings=mask_settings)
        return self._execute(prepared, started, progress, cancel)

    def _execute(
        self, prepared: PreparedSwap, started: float, progress: Progress | None, cancel: threading.Event | None
    ) -> SwapResult:
        result = self.repaint(prepared, progress=progress, cancel=cancel)
        result.record["timings"]["total_s"] = round(time.perf_counter() - started, 4)
        return result

    def repaint(
        self,
        prepared: PreparedSwap,
        settings: Sequence[SwapSettings] | None = None,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SwapResult:
        """Execute a plan: inpaint its regions (with ``settings`` instead of the targets' own, for a sweep's
        candidates); the GPU part of :meth:`swap`."""
        started = time.perf_counter()
        targets = prepared.targets
        settings = [t.settings for t in targets] if settings is None else [_with_seed(chosen) for chosen in settings]
        pipeline = self.pipeline
        size = self.native_resolution
        settings = [_face_strength(s, region, size) for s, region in zip(settings, prepared.regions, strict=True)]
        plans = [self.conditioning(chosen) for chosen in settings]  # a bad LoRA fails before any work
        counts = [self.steps_run(chosen) for chosen in settings]
        current, done, faces = prepared.image, 0, []
        totals = {"inference_s": 0.0, "lora_s": 0.0, "blend_s": 0.0}
        for region, target, chosen, conditioning, count in zip(
            prepared.regions, targets, settings, plans, counts, strict=True
        ):
            report = None if progress is None else offset_progress(progress, done, sum(counts))
            crop, crop_mask = cut(current, region, size)
            conditioning = conditioning.placed(region, size)
            generated, timings, ran = self._inpaint(pipeline, crop, crop_mask, chosen, conditioning, report, cancel)
            blend_started = time.perf_counter()
            if chosen.color_match:
                generated = Image.fromarray(
                    match_colors(np.asarray(generated), np.asarray(crop), np.asarray(crop_mask))
                )
            current = paste_back(current, generated, region.mask, region.box)
            timings["blend_s"] = time.perf_counter() - blend_started
            for name, value in timings.items():
                totals[name] += value
            faces.append({**_face_record(region, target, chosen, conditioning), **ran})
            done += count
        totals["prepare_s"] = prepared.prepare_s
        totals["total_s"] = prepared.prepare_s + time.perf_counter() - started
        record = self._record(prepared, faces, size, totals)
        painted = prepared.painted
        return SwapResult(current, record, None, _union(region.mask for region in prepared.regions), painted)

    @property
    def fast_mode(self) -> FastMode:
        """The few-step LoRA and its sampling (``ModelSpec.fast_lora``; LCM-LoRA SDXL by default)."""
        from faceswap_core.fast import fast_mode_for

        return fast_mode_for(self.model.fast_lora)

    def steps_run(self, settings: SwapSettings) -> int:
        """The denoising steps a call with ``settings`` runs (for progress over several faces or candidates)."""
        from faceswap_core.conditioning.few_step import steps_run

        return steps_run(self, settings)

    @property
    def identity(self) -> IdentityAdapter:
        """The image-prompt adapter: created on first use, loaded into the pipeline with the first photos."""
        with self._identity_lock:  # not the GPU lock: a running swap or training must not hold this up
            if self._identity is None:
                from faceswap_core.identity_adapter import IdentityAdapter

                self._identity = IdentityAdapter(self.model.ip_adapter, backend=self.landmarks)
            return self._identity

    @property
    def face_control(self) -> FaceControl:
        """Keep expression's ControlNet (``ModelSpec.controlnet``): its weights load on the first swap that uses it."""
        with self._identity_lock:
            if self._face_control is None:
                from faceswap_core.conditioning.controlnet import FaceControl

                self._face_control = FaceControl(self.model.controlnet)
            return self._face_control

    @property
    def loaded_identity(self) -> IdentityAdapter | None:
        """The image-prompt adapter if a swap has created it (then every call must feed it embeddings)."""
        return self._identity

    def conditioning(self, settings: SwapSettings) -> Plan:
        """What every plug-in adds to a face's call for ``settings``; their CPU work (loading, checking and
        aligning photos) happens here, outside the GPU lock, so a bad LoRA fails before any GPU work."""
        return plan_for(self, settings, self.conditionings)

    def _inpaint(
        self,
        pipeline: Any,
        crop: Image.Image,
        crop_mask: Image.Image,
        settings: SwapSettings,
        conditioning: Plan,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> tuple[Image.Image, dict[str, float], dict[str, Any]]:
        """The GPU part, under the lock: set this face's conditioning, then run the pipeline on its crop.

        Also returns what the UNet actually did (scheduler, steps run, evaluations: a batch of two
        under classifier-free guidance counts as two), for the record.
        """
        import torch

        from faceswap_core.fast import count_unet_evaluations

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if cancel is not None and cancel.is_set():
                raise CancelledError("the swap was cancelled")
            if progress is not None:
                progress(step + 1, pipe.num_timesteps)
            return tensors

        call = {
            "prompt": settings.prompt,
            "negative_prompt": settings.negative_prompt or None,
            "image": crop,
            "mask_image": crop_mask,
            "height": crop.height,
            "width": crop.width,
            "strength": settings.strength,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance,
            "generator": torch.Generator(device="cpu").manual_seed(settings.seed or 0),
            "callback_on_step_end": on_step_end,
        }
        with self.lock:
            if cancel is not None and cancel.is_set():
                raise CancelledError("the swap was cancelled")
            waited = time.perf_counter()
            self._use_adapters(pipeline, conditioning.adapters)
            lora_s = time.perf_counter() - waited
            try:
                with ExitStack() as stack, torch.inference_mode():
                    for contribution in conditioning.contributions:
                        call.update(stack.enter_context(contribution.applied(pipeline, call)))
                    runner = conditioning.runner(pipeline)
                    if runner is not pipeline:  # its own object, sharing the modules: give it this call's scheduler
                        runner.scheduler = pipeline.scheduler
                    ran = stack.enter_context(count_unet_evaluations(runner))
                    output = runner(**call)
            except Exception as err:  # cancelled, out of memory or a bug: free what the run held first
                if self.model.low_vram:
                    pipeline.maybe_free_model_hooks()
                self.release_gpu()
                if isinstance(err, torch.cuda.OutOfMemoryError):
                    raise FaceswapError(
                        "the GPU ran out of memory; start with --low-vram, close other GPU programs or use fewer steps"
                    ) from None
                raise
            inference_s = time.perf_counter() - waited - lora_s
        return output.images[0], {"lora_s": lora_s, "inference_s": inference_s}, ran.record()

    def _use_adapters(self, pipeline: Any, adapters: Sequence[tuple[LoraInfo, float]]) -> None:
        """Make exactly ``adapters`` active with their weights; loaded ones stay on the model, cached by file."""
        if not adapters:
            if self._adapters:
                pipeline.disable_lora()
            return
        names, weights = [], []
        for lora, weight in adapters:
            stat = lora.path.stat()
            key = (str(lora.path.resolve()), stat.st_mtime_ns, stat.st_size)
            adapter = self._adapters.get(key)
            if adapter is None:
                adapter = self._adapters[key] = self._load_adapter(pipeline, lora)
            self._adapters.move_to_end(key)
            names.append(adapter)
            weights.append(weight)
        while len(self._adapters) > max(MAX_CACHED_ADAPTERS, len(names)):
            _, oldest = self._adapters.popitem(last=False)
            pipeline.delete_adapters(oldest)
        pipeline.enable_lora()
        pipeline.set_adapters(names, adapter_weights=weights)

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
            first = first_line(err)
            raise ModelLoadError(
                f"LoRA {lora.name} ({lora.path}) does not fit the base model {self.base_model}: {first}"
            ) from err
        return adapter

    def _record(
        self, prepared: PreparedSwap, faces: list[dict[str, Any]], resolution: int, timings: dict[str, float]
    ) -> dict[str, Any]:
        pipeline = self._pipeline
        return {
            "faces": faces,
            "base_model": self.model.base,
            "vae": self.model.vae,
            "landmarks": prepared.landmarks or self.landmarks,
            **({"face_parser": self.model.face_parser} if self.model.face_parser else {}),
            "image_size": list(prepared.image.size),
            "resolution": resolution,
            "device": str(getattr(pipeline, "device", "")),
            "dtype": str(getattr(pipeline, "dtype", "")).removeprefix("torch."),
            "timings": {name: round(value, 4) for name, value in timings.items()},
            "version": __version__,
            **({} if prepared.request is None else {"request": prepared.request.public(prepared.hashes)}),
        }

    # --- strength search ------------------------------------------------------------------------
    def search(
        self,
        image: ImageInput,
        *,
        settings: SwapSettings = SwapSettings(),
        face: int | None = None,
        mask: ImageInput | None = None,
        strengths: Sequence[float] | None = SEARCH_STRENGTHS,
        seeds: Sequence[int] | None = None,
        references: Sequence[ImageInput] | None = None,
        mask_settings: MaskSettings | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[SwapResult]:
        """Try every strength x seed on one face, ranked by likeness to ``references``: :func:`sweep` of one face."""
        from faceswap_core.requests import FaceRequest, SwapRequest
        from faceswap_core.sweep import sweep

        request = SwapRequest(
            image,
            faces=() if face is None else (FaceRequest(face),),
            settings=settings,
            mask=mask,
            mask_settings=mask_settings or MaskSettings(),
        )
        return sweep(
            self, request, strengths=strengths, seeds=seeds, references=references, progress=progress, cancel=cancel
        )


def _single_target(settings: SwapSettings, face: int | None, mask: ImageInput | None) -> FaceTarget:
    """One face: the given index, else the largest face when there is no mask, else wherever the mask is."""
    return FaceTarget(settings, face if face is not None else (0 if mask is None else None), mask)


def _with_seed(settings: SwapSettings) -> SwapSettings:
    """The settings with a fixed seed: a random one when none is set, so the record can reproduce it."""
    return settings if settings.seed is not None else replace(settings, seed=secrets.randbelow(MAX_SEED + 1))


def _face_strength(settings: SwapSettings, region: Region, size: int) -> SwapSettings:
    """With dynamic strength, the strength this face gets; recorded as plain settings so a replay is exact."""
    if not settings.dynamic_strength:
        return settings
    from faceswap_core.conditioning.controlnet import dynamic_strength

    return replace(settings, strength=dynamic_strength(settings.strength, region, size), dynamic_strength=False)


def _nth_face(faces: list[Face], index: int, *, given_mask: bool) -> Face | None:
    """The ``index``-th largest face; a clear error naming how many there are (none needed with a mask)."""
    if index < len(faces):
        return faces[index]
    if given_mask:
        return None
    if not faces:
        raise NoFaceError(
            "target image: no face found; paint over the face to replace by hand (or pass a mask) instead"
        )
    found = "1 face" if len(faces) == 1 else f"{len(faces)} faces"
    raise NoFaceError(f"target image: there is no face {index}; {found} found (indices 0-{len(faces) - 1})")


def _face_record(region: Region, target: FaceTarget, settings: SwapSettings, plan: Plan) -> dict[str, Any]:
    """One repainted face in the record: where (face, mask, crop box), who and with what (settings, plug-ins)."""
    skipped = {"identity_photos"} | ({"extras"} if not settings.extras else set())
    chosen = {name: value for name, value in as_dict(settings).items() if name not in skipped}
    return {  # the photos are recorded by content hash (the image prompt's record), never by their server paths
        "face": region.face_index,
        "mask": region.mask_source,
        "crop_box": list(region.box),
        "person": target.person or None,
        **chosen,
        **plan.record(),
    }


def _union(masks: Iterable[Image.Image]) -> Image.Image:
    merged: np.ndarray | None = None
    for mask in masks:
        values = np.asarray(mask)
        merged = values.copy() if merged is None else np.maximum(merged, values)
    assert merged is not None
    return Image.fromarray(merged, mode="L")


def offset_progress(progress: Progress, done: int, total: int) -> Progress:
    """Report one call's steps as steps of the whole job (several faces, several candidates)."""
    return lambda step, _count: progress(min(done + step, total), total)


def _loaded_adapter_names(pipeline: Any) -> set[str]:
    try:
        return {name for names in pipeline.get_list_adapters().values() for name in names}
    except (AttributeError, ValueError):
        return set()
