"""Image-prompt identity: a person from a few photos, no training (IP-Adapter "plus-face" for SDXL).

The adapter conditions the inpainting on the photos directly: a CLIP ViT-H encoder turns each
aligned face crop into patch features, a small resampler turns those into 16 tokens per photo, and
extra cross-attention layers (``to_k_ip``/``to_v_ip``, beside the LoRA's ``to_q/k/v/out``) read
them. What this module owns: loading the adapter once into the resident pipeline (hub id or a local
folder in the h94 layout, safetensors only), turning photos into embeddings once per set of photos
(cached by content hash), and the keyword arguments and record of one pipeline call. The engine
decides when; nothing here runs unless a person with photos is used.

Call order for the engine (``Engine.lock`` is the GPU lock):

* outside the lock, per request: ``refs = adapter.references(photos)`` (load, hash, detect, align);
* under the lock: ``embeds = adapter.embeds(pipeline, refs)`` (loads the adapter the first time,
  encodes only an uncached set), then ``kwargs = adapter.call_kwargs(pipeline, embeds, scale=...,
  guidance=...)`` and ``pipeline(..., **kwargs)``. Requests without photos still call
  ``call_kwargs(pipeline, None, ...)``: once the adapter is in the UNet every call needs image
  embeddings, so those requests get neutral ones at scale 0, which is exactly the pipeline without
  the adapter.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceswap_core.errors import FaceswapError, ModelLoadError, SettingsError, first_line
from faceswap_core.images import ImageInput, describe, load_image
from faceswap_core.loras import PICKLE_SUFFIXES, check_safe_weights
from faceswap_core.settings import (
    DEFAULT_FACE_BACKEND,
    DEFAULT_IDENTITY_COMBINE,
    DEFAULT_IP_ADAPTER,
    IDENTITY_CACHE_SIZE,
    IDENTITY_COMBINE,
    IDENTITY_EYE_DISTANCE,
    IDENTITY_EYE_Y,
    IDENTITY_SCALE,
    IDENTITY_SCALE_WITH_LORA,
    IP_ADAPTER_ENCODER,
    IP_ADAPTER_SUBFOLDER,
    IP_ADAPTER_WEIGHT,
    MAX_IDENTITY_PHOTOS,
)

if TYPE_CHECKING:
    import torch

REFERENCE_SIZE = 224  # ViT-H's input size: the aligned crop reaches the encoder without a second crop
ENCODER_WEIGHT = "model.safetensors"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Reference:
    """One reference photo: its content hash, the upright image and, unless its set is cached, the face crop."""

    name: str
    sha256: str
    image: Image.Image = field(repr=False)
    crop: Image.Image | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IdentityEmbeds:
    """Encoder features of one set of photos, in the layout ``ip_adapter_image_embeds`` takes.

    ``positive`` is (1, photos, tokens, width) for "concat" and (1, 1, tokens, width) for "mean";
    ``negative`` has the same shape and holds the features of a blank image, as diffusers computes
    for the unconditional half of classifier-free guidance.
    """

    positive: torch.Tensor = field(repr=False)
    negative: torch.Tensor = field(repr=False)
    photo_hashes: tuple[str, ...]
    combine: str

    def pipeline_embeds(self, guidance: float) -> list[torch.Tensor]:
        """One tensor per loaded adapter; with guidance > 1 diffusers splits it as (negative, positive)."""
        import torch

        if guidance > 1:
            return [torch.cat([self.negative, self.positive])]
        return [self.positive]


class IdentityAdapter:
    """The IP-Adapter of one resident pipeline: loaded once, lazily; embeddings cached per set of photos.

    ``encode_count`` counts encoder runs (one per uncached set), so tests and logs can see the cache work.
    """

    def __init__(
        self,
        source: str = DEFAULT_IP_ADAPTER,
        *,
        subfolder: str = IP_ADAPTER_SUBFOLDER,
        weight_name: str = IP_ADAPTER_WEIGHT,
        encoder_folder: str = IP_ADAPTER_ENCODER,
        combine: str = DEFAULT_IDENTITY_COMBINE,
        backend: str = DEFAULT_FACE_BACKEND,
        cache_size: int = IDENTITY_CACHE_SIZE,
    ) -> None:
        if combine not in IDENTITY_COMBINE:
            raise SettingsError(f"photo combination must be one of {', '.join(IDENTITY_COMBINE)}, got {combine!r}")
        if Path(weight_name).suffix.lower() != ".safetensors":
            check_safe_weights(weight_name)  # raises the pickle / not-safetensors message for the name
        self.source = source
        self.subfolder = subfolder
        self.weight_name = weight_name
        self.encoder_folder = encoder_folder
        self.combine = combine
        self.backend = backend
        self.cache_size = cache_size
        self.encode_count = 0
        self._cache: OrderedDict[tuple[str, ...], IdentityEmbeds] = OrderedDict()
        self._blank: torch.Tensor | None = None  # encoder features of a blank image: CFG's negative

    # --- loading --------------------------------------------------------------------------------
    def is_loaded(self, pipeline: Any) -> bool:
        """Whether this pipeline's UNet carries an IP-Adapter and an image encoder."""
        unet = getattr(pipeline, "unet", None)
        return (
            unet is not None
            and getattr(unet.config, "encoder_hid_dim_type", None) == "ip_image_proj"
            and getattr(pipeline, "image_encoder", None) is not None
        )

    def load(self, pipeline: Any) -> None:
        """Load the adapter and its encoder into ``pipeline`` (once; call under the GPU lock).

        With model CPU offload active the offload is enabled again afterwards, so the new image
        encoder gets its hook and the UNet's new layers travel with the UNet.
        """
        if self.is_loaded(pipeline):
            return
        import torch

        folder = self.local_folder()
        offload_device = getattr(pipeline, "_offload_device", None) if _offloaded(pipeline) else None
        try:
            with torch.inference_mode(False):  # see _own_weights
                pipeline.load_ip_adapter(
                    str(folder),
                    subfolder=self.subfolder,
                    weight_name=self.weight_name,
                    image_encoder_folder=self.encoder_folder,
                    local_files_only=True,
                )
        except FaceswapError:
            raise
        except Exception as err:  # a mismatched adapter raises KeyError/RuntimeError/ValueError from diffusers
            _unload_quietly(pipeline)
            first = first_line(err)
            raise ModelLoadError(
                f"IP-Adapter {self.source} ({self.weight_name}) does not fit this base model (SDXL needed): {first}"
            ) from err
        _own_weights(pipeline)
        if offload_device is not None:
            pipeline.enable_model_cpu_offload(device=offload_device)
        pipeline.set_ip_adapter_scale(0.0)
        self._cache.clear()
        self._blank = None

    def local_folder(self) -> Path:
        """The adapter's folder on disk: the source folder, or the hub snapshot (downloaded if needed)."""
        path = Path(self.source).expanduser()
        if path.is_dir():
            folder = path
        elif path.exists() or not _HUB_ID.match(self.source) or self.source.startswith((".", "/", "~")):
            raise ModelLoadError(
                f"IP-Adapter {self.source}: no such folder; pass a folder in the h94/IP-Adapter layout "
                f"({self.subfolder}/{self.weight_name} and {self.encoder_folder}/) or a hub id"
            )
        else:
            folder = self._snapshot()
        self._check_files(folder)
        return folder

    def _snapshot(self) -> Path:
        """Fetch only the safetensors adapter and encoder files (the repo also holds multi-GB pickles)."""
        from huggingface_hub import snapshot_download

        wanted = [f"{self.subfolder}/{self.weight_name}", f"{self.encoder_folder}/config.json"]
        wanted.append(f"{self.encoder_folder}/{ENCODER_WEIGHT}")
        try:
            return Path(snapshot_download(self.source, allow_patterns=wanted))
        except Exception as err:  # offline, missing, gated: huggingface_hub raises many types
            text = f"{type(err).__name__} {err}".lower()
            if "401" in text or "403" in text or "gated" in text or "not found" in text or "404" in text:
                reason = "was not found on the Hugging Face hub or needs a login (`hf auth login`)"
            else:
                reason = "is not in the local cache and cannot be downloaded now"
            raise ModelLoadError(  # the one message a person sees: what is missing, and both ways to get it
                f"photos of a person need the IP-Adapter {self.source}, which {reason}; run "
                f"`hf download {self.source} {' '.join(wanted)}` while online, or give a local folder in that "
                "layout with --ip-adapter (FACESWAP_IP_ADAPTER)"
            ) from err

    def _check_files(self, folder: Path) -> None:
        weights = folder / self.subfolder / self.weight_name
        if not weights.is_file():
            raise ModelLoadError(f"IP-Adapter {self.source}: {self.subfolder}/{self.weight_name} is missing")
        check_safe_weights(weights)
        encoder = folder / self.encoder_folder
        if not (encoder / "config.json").is_file():
            raise ModelLoadError(f"IP-Adapter {self.source}: the image encoder {self.encoder_folder}/ is missing")
        if not (encoder / ENCODER_WEIGHT).is_file():
            pickles = [p for p in encoder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
            if pickles:
                check_safe_weights(pickles[0])
            raise ModelLoadError(f"IP-Adapter {self.source}: {self.encoder_folder}/{ENCODER_WEIGHT} is missing")
        check_safe_weights(encoder / ENCODER_WEIGHT)

    # --- photos -> embeddings -------------------------------------------------------------------
    def references(self, photos: Sequence[ImageInput], *, names: Sequence[str] | None = None) -> list[Reference]:
        """Load and hash the photos; detect and align their faces unless the set is cached (CPU work).

        A photo without a face is a :class:`NoFaceError` naming it: a wrong reference would silently
        steer the swap towards someone else.
        """
        if not photos:
            raise SettingsError("no reference photos were given")
        if len(photos) > MAX_IDENTITY_PHOTOS:
            raise SettingsError(f"at most {MAX_IDENTITY_PHOTOS} reference photos are used, got {len(photos)}")
        labels = list(names) if names is not None else [describe(photo) for photo in photos]
        images = [load_image(photo, name=label) for photo, label in zip(photos, labels, strict=True)]
        hashes = [photo_hash(photo, image) for photo, image in zip(photos, images, strict=True)]
        refs = [Reference(*fields) for fields in zip(labels, hashes, images, strict=True)]
        if self._key(hashes) in self._cache:
            return refs
        return [self._aligned(ref) for ref in refs]

    def _aligned(self, ref: Reference) -> Reference:
        from faceswap_core.faces.align import align_face
        from faceswap_core.faces.detect import find_face

        if ref.crop is not None:
            return ref
        face = find_face(ref.image, backend=self.backend, name=ref.name)
        crop = align_face(
            ref.image, face, size=REFERENCE_SIZE, eye_distance=IDENTITY_EYE_DISTANCE, eye_y=IDENTITY_EYE_Y
        )
        return replace(ref, crop=crop)

    def embeds(self, pipeline: Any, references: Sequence[Reference]) -> IdentityEmbeds:
        """The embeddings of a set of photos: from the cache, or encoded once (under the GPU lock)."""
        key = self._key([ref.sha256 for ref in references])
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        self.load(pipeline)
        # A set: the order of upload does not matter. Crops are made here only if the set left the
        # cache between references() and now.
        ordered = sorted((self._aligned(ref) for ref in references), key=lambda ref: ref.sha256)
        features = self._encode(pipeline, [ref.crop for ref in ordered if ref.crop is not None])
        if self.combine == "mean":
            features = features.mean(dim=0, keepdim=True)
        blank = self._blank_features(pipeline)
        positive = features[None]
        negative = blank[None].expand_as(positive).contiguous()
        embeds = IdentityEmbeds(positive, negative, tuple(ref.sha256 for ref in ordered), self.combine)
        self._cache[key] = embeds
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return embeds

    def _encode(self, pipeline: Any, crops: list[Image.Image]) -> torch.Tensor:
        """Penultimate-layer patch features, as diffusers' ``encode_image`` gives the plus adapters."""
        pixels = pipeline.feature_extractor(crops, return_tensors="pt").pixel_values
        self.encode_count += 1
        return self._hidden_states(pipeline, pixels)

    def _blank_features(self, pipeline: Any) -> torch.Tensor:
        """The encoder's features of an all-zero (mean-grey after normalisation) input, computed once."""
        import torch

        if self._blank is None:
            size = pipeline.image_encoder.config.image_size
            self._blank = self._hidden_states(pipeline, torch.zeros(1, 3, size, size))
        return self._blank

    @staticmethod
    def _hidden_states(pipeline: Any, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        encoder = pipeline.image_encoder
        dtype = next(encoder.parameters()).dtype
        with torch.no_grad():
            pixels = pixels.to(device=pipeline._execution_device, dtype=dtype)
            return encoder(pixels, output_hidden_states=True).hidden_states[-2]

    def _key(self, hashes: Sequence[str]) -> tuple[str, ...]:
        return (self.combine, *sorted(hashes))

    # --- one pipeline call ----------------------------------------------------------------------
    def call_kwargs(
        self, pipeline: Any, embeds: IdentityEmbeds | None, *, scale: float, guidance: float
    ) -> dict[str, Any]:
        """Set the adapter's scale and return what to add to ``pipeline(...)`` (under the GPU lock).

        Without photos: nothing while the adapter was never loaded; neutral embeddings at scale 0
        once it is (the UNet then requires image embeddings, and scale 0 skips the adapter's layers).
        """
        if embeds is None:
            if not self.is_loaded(pipeline):
                return {}
            pipeline.set_ip_adapter_scale(0.0)
            blank = self._blank_features(pipeline)[None]
            neutral = IdentityEmbeds(blank, blank, (), self.combine)
            return {"ip_adapter_image_embeds": neutral.pipeline_embeds(guidance)}
        if not np.isfinite(scale):
            raise SettingsError(f"identity scale must be a number, got {scale}")
        IDENTITY_SCALE.check("identity scale", scale)
        self.load(pipeline)
        pipeline.set_ip_adapter_scale(float(scale))
        return {"ip_adapter_image_embeds": embeds.pipeline_embeds(guidance)}

    def record(self, embeds: IdentityEmbeds, scale: float) -> dict[str, Any]:
        """What a result's record says about the identity photos: which (by hash), which adapter, how strong."""
        return {
            "identity_photos": list(embeds.photo_hashes),
            "identity_adapter": f"{self.source}:{self.subfolder}/{self.weight_name}",
            "identity_scale": scale,
            "identity_combine": embeds.combine,
        }


def default_identity_scale(with_lora: bool) -> float:
    """Photos alone carry the identity; beside a LoRA they only add detail (see settings)."""
    return IDENTITY_SCALE_WITH_LORA if with_lora else IDENTITY_SCALE.default


def photo_hash(source: ImageInput, image: Image.Image) -> str:
    """sha256 of the file's bytes (what ``sha256sum`` prints), or of the decoded pixels for in-memory images."""
    digest = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    elif isinstance(source, bytes):
        digest.update(source)
    else:
        digest.update(f"{image.width}x{image.height}:".encode())
        digest.update(np.ascontiguousarray(np.asarray(image)).tobytes())
    return digest.hexdigest()


def _offloaded(pipeline: Any) -> bool:
    """Whether model CPU offload hooks are on the pipeline (diffusers keeps them in ``_all_hooks``)."""
    return bool(getattr(pipeline, "_all_hooks", None))


def _own_weights(pipeline: Any) -> None:
    """Copy the adapter's CPU tensors out of the memory-mapped files they were loaded from.

    On CPU, when the file's dtype is the pipeline's, diffusers and transformers keep the tensors that
    safetensors maps from disk (measured: rewriting the file in place changed the loaded weights), so
    a file overwritten later would change, or crash, the running model. GPU tensors are copies already.
    """
    import torch

    modules = [pipeline.image_encoder, pipeline.unet.encoder_hid_proj]
    modules += [proc for proc in pipeline.unet.attn_processors.values() if hasattr(proc, "to_k_ip")]
    with torch.inference_mode(False), torch.no_grad():  # copies made in a swap's inference mode would be
        for module in modules:  # inference tensors, which a LoRA loaded later (peft) cannot wrap
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.device.type == "cpu":
                    tensor.data = tensor.data.clone()


def _unload_quietly(pipeline: Any) -> None:
    """Leave the pipeline as it was after a failed load: no half-loaded adapter in the UNet."""
    try:
        pipeline.unload_ip_adapter()
    except Exception:  # noqa: BLE001 - best effort on an already failing path; the original error is raised
        return


# --- tiny random adapter for tests, CI and smoke checks ------------------------------------------


TINY_ENCODER = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
}


def save_tiny_ip_adapter(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a random plus-face adapter and CLIP encoder in the h94 layout, fitting the tiny SDXL model.

    ``folder/models/image_encoder/`` holds the encoder (config + safetensors) and
    ``folder/sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors`` the adapter in the original
    IP-Adapter key layout, so the real ``load_ip_adapter`` call and its key conversion are exercised.
    """
    import tempfile

    from faceswap_core.models import build_tiny_pipeline

    with tempfile.TemporaryDirectory() as scratch:
        unet = build_tiny_pipeline(seed=seed, vocab_dir=Path(scratch)).unet
    return save_random_ip_adapter(folder, unet, TINY_ENCODER, hidden_dims=32, heads=1, seed=seed)


def save_random_ip_adapter(
    folder: str | os.PathLike,
    unet: Any,
    encoder_config: dict[str, Any],
    *,
    hidden_dims: int,
    heads: int,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Path:
    """A random plus-face adapter for ``unet`` and a random CLIP vision encoder, in the h94 layout.

    The tiny one above for tests; benchmarks pass the real sizes (ViT-H, 1280 wide, 20 heads).
    """
    import torch
    from diffusers.models.embeddings import IPAdapterPlusImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    out = Path(folder)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(**encoder_config)
    encoder = CLIPVisionModelWithProjection(config).to(dtype or torch.float32)
    encoder.save_pretrained(out / IP_ADAPTER_ENCODER, safe_serialization=True)
    del encoder
    projection = IPAdapterPlusImageProjection(
        embed_dims=config.hidden_size,
        output_dims=unet.config.cross_attention_dim,
        hidden_dims=hidden_dims,
        depth=4,  # diffusers builds the resampler with its default depth of 4, as in the real file
        heads=heads,  # diffusers reads the heads as to_q rows / 64
        num_queries=16,
    )
    tensors = {f"image_proj.{k}": v for k, v in _original_resampler_keys(projection.state_dict()).items()}
    key_id = 1  # the original numbering: every attention processor counts, cross-attention ones are odd
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attention = unet.get_submodule(name.removesuffix(".processor"))
            for part in ("to_k_ip", "to_v_ip"):
                layer = torch.nn.Linear(attention.to_k.in_features, attention.to_k.out_features, bias=False)
                tensors[f"ip_adapter.{key_id}.{part}.weight"] = layer.weight.detach()
            key_id += 2
    weights = out / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype or v.dtype).contiguous() for k, v in tensors.items()}, str(weights))
    return out


def _original_resampler_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' resampler names back to the IP-Adapter repository's (the inverse of its conversion)."""
    import torch

    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] != "layers":
            renamed[key] = value
            continue
        prefix, rest = f"layers.{parts[1]}", ".".join(parts[2:])
        if rest.startswith("attn.to_k."):
            value_key = key.replace("attn.to_k.", "attn.to_v.")
            renamed[f"{prefix}.0.to_kv.{parts[-1]}"] = torch.cat([value, state[value_key]])
            continue
        if rest.startswith("attn.to_v."):
            continue
        for new, old in (
            ("ln0.", "0.norm1."),
            ("ln1.", "0.norm2."),
            ("attn.to_q.", "0.to_q."),
            ("attn.to_out.0.", "0.to_out."),
            ("ff.0.", "1.0."),
            ("ff.1.net.0.proj.", "1.1."),
            ("ff.1.net.2.", "1.3."),
        ):
            if rest.startswith(new):
                renamed[f"{prefix}.{old}{rest.removeprefix(new)}"] = value
                break
        else:
            raise ValueError(f"unexpected resampler key {key}")
    return renamed
