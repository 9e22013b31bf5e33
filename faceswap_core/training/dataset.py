"""The training set: read (or prepare) the photos, then encode them ONCE into tensors.

Why encode once: diffusers' example script runs the VAE and both text encoders on every step,
although a face dataset is 5-20 fixed photos. Here the VAE latent distributions (mean and std, so
each step can still draw a fresh latent sample, as the example's ``latent_dist.sample()`` does) and
the SDXL text embeddings are computed before the loop, flipped copies included, and the VAE and the
text encoders leave the GPU for the rest of training.

For a 9-channel inpainting UNet the input also needs a mask and the latents of the masked image;
these are cached too, for a few masks per photo (the full frame plus random boxes, as diffusers'
inpainting trainers draw them), and each step picks one at random.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from faceswap_core.dataset_file import METADATA_FILE, DatasetItem, read_metadata, write_metadata
from faceswap_core.errors import DatasetError
from faceswap_core.images import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic")
INPAINT_MASKS_PER_IMAGE = 4  # the full frame + 3 random boxes; more adds VAE work once, not per step


def _photos_in(paths: Sequence[Path]) -> list[Path]:
    photos: list[Path] = []
    for path in paths:
        if path.is_dir():
            photos.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        else:
            photos.append(path)
    return photos


def resolve_dataset(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    prepare_dir: Path,
    *,
    size: int,
    class_word: str,
    vqa_model: str | None = None,
) -> tuple[Path, list[DatasetItem]]:
    """The dataset folder and its items: a prepared folder as is, raw photos prepared into ``prepare_dir``.

    A folder with ``metadata.csv`` is a prepared dataset. Anything else (photo files, or a folder of
    photos) goes through :func:`faceswap_core.prepare.prepare_dataset` first: aligned square crops
    with template captions, or VQA captions when ``vqa_model`` is given. An existing preparation in
    ``prepare_dir`` (a resumed run) is reused so the captions stay what they were.
    """
    paths = [Path(data)] if isinstance(data, (str, os.PathLike)) else [Path(p) for p in data]
    if not paths:
        raise DatasetError("no dataset given; pass a prepared dataset folder or some photos of the person")
    for path in paths:
        if not path.exists():
            raise DatasetError(f"{path}: no such dataset folder or photo")
    if len(paths) == 1 and (paths[0] / METADATA_FILE).is_file():
        return paths[0], read_metadata(paths[0])
    if (prepare_dir / METADATA_FILE).is_file():
        return prepare_dir, read_metadata(prepare_dir)
    photos = _photos_in(paths)
    if not photos:
        raise DatasetError(f"{paths[0]}: no photos found (and no {METADATA_FILE} of a prepared dataset)")
    from faceswap_core.captions import template_caption
    from faceswap_core.prepare import prepare_dataset

    report = prepare_dataset(
        photos, prepare_dir, size=size, caption=template_caption(class_word), class_word=class_word
    )
    if not report.written:
        reasons = "; ".join(f"{name}: {why}" for name, why in report.skipped[:3])
        raise DatasetError(f"none of the {len(photos)} photos could be prepared ({reasons})")
    items = read_metadata(prepare_dir)
    if vqa_model:
        from faceswap_core.captions import VqaCaptioner

        captioner = VqaCaptioner(vqa_model)
        items = [DatasetItem(item.image, captioner.caption(item.image, class_word)) for item in items]
        write_metadata(prepare_dir, [(item.image.name, item.caption) for item in items])
    return prepare_dir, items


def square_crop(image: Any, resolution: int) -> tuple[Any, tuple[int, int], tuple[int, int]]:
    """Resize the short side to ``resolution`` and centre-crop; returns the image, original size and crop.

    The original (height, width) and the crop's top-left are what SDXL's size conditioning expects.
    """
    from PIL import Image

    width, height = image.size
    scale = resolution / min(width, height)
    resized = image.resize(
        (max(resolution, round(width * scale)), max(resolution, round(height * scale))), Image.LANCZOS
    )
    left = (resized.width - resolution) // 2
    top = (resized.height - resolution) // 2
    return resized.crop((left, top, left + resolution, top + resolution)), (height, width), (top, left)


def tokenize(tokenizers: Sequence[Any], captions: Sequence[str]) -> list[torch.Tensor]:
    """Token ids for each tokenizer, padded to its 77 tokens as the SDXL pipeline pads them."""
    return [
        tokenizer(
            list(captions),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        for tokenizer in tokenizers
    ]


def encode_text(text_encoders: Sequence[Any], input_ids: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL prompt embeddings: the penultimate hidden states of both encoders side by side, and the
    pooled (projected) output of the second encoder, exactly as ``encode_prompt`` builds them."""
    hidden = []
    pooled = None
    for encoder, ids in zip(text_encoders, input_ids, strict=True):
        out = encoder(ids.to(encoder.device), output_hidden_states=True)
        pooled = out[0]
        hidden.append(out.hidden_states[-2])
    assert pooled is not None
    return torch.cat(hidden, dim=-1), pooled


def time_ids(original: tuple[int, int], crop: tuple[int, int], target: int, aesthetic: bool) -> torch.Tensor:
    """SDXL's micro-conditioning: original size, crop corner and target size (or an aesthetic score)."""
    values = [*original, *crop, 6.0] if aesthetic else [*original, *crop, target, target]
    return torch.tensor(values, dtype=torch.float32)


def random_box_mask(resolution: int, generator: torch.Generator) -> torch.Tensor:
    """A filled rectangle covering 10-60 % of the side in each direction (1 = area to inpaint)."""
    mask = torch.zeros(1, resolution, resolution)
    low, high = max(1, resolution // 10), max(2, resolution * 6 // 10)
    height, width = (int(v) for v in torch.randint(low, high + 1, (2,), generator=generator))
    top = int(torch.randint(0, resolution - height + 1, (1,), generator=generator))
    left = int(torch.randint(0, resolution - width + 1, (1,), generator=generator))
    mask[:, top : top + height, left : left + width] = 1.0
    return mask


@dataclass
class CachedDataset:
    """Every training example as tensors on the CPU; one row per image (and per flipped copy)."""

    captions: list[str]
    latent_mean: torch.Tensor  # (N, 4, h, w), already shifted and scaled like the pipeline's latents
    latent_std: torch.Tensor
    time_ids: torch.Tensor  # (N, 6) or (N, 5) with an aesthetic score
    prompt_embeds: torch.Tensor | None  # (N, 77, D); None when the text encoders are trained
    pooled_embeds: torch.Tensor | None  # (N, P)
    input_ids: list[torch.Tensor]  # per tokenizer (N, 77), to encode per step when training the encoders
    masks: torch.Tensor | None  # (N, M, 1, h, w) for a 9-channel UNet
    masked_latents: torch.Tensor | None  # (N, M, 4, h, w)

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A batch (on the CPU): a fresh latent sample per example and, for inpainting, a random mask."""
        mean, std = self.latent_mean[indices], self.latent_std[indices]
        out = {
            "latents": mean + std * torch.randn(mean.shape, generator=generator),
            "time_ids": self.time_ids[indices],
            "input_ids_1": self.input_ids[0][indices],
            "input_ids_2": self.input_ids[1][indices],
        }
        if self.prompt_embeds is not None and self.pooled_embeds is not None:
            out["prompt_embeds"] = self.prompt_embeds[indices]
            out["pooled_embeds"] = self.pooled_embeds[indices]
        if self.masks is not None and self.masked_latents is not None:
            pick = torch.randint(0, self.masks.shape[1], (len(indices),), generator=generator)
            out["mask"] = self.masks[indices, pick]
            out["masked_latents"] = self.masked_latents[indices, pick]
        return out


def encode_dataset(
    pipeline: Any,
    items: Sequence[DatasetItem],
    *,
    resolution: int,
    flip: bool,
    device: torch.device,
    text_dtype: torch.dtype,
    encode_captions: bool,
    seed: int,
    on_item: Callable[[int, int], None] | None = None,
) -> CachedDataset:
    """Run the VAE (in float32: SDXL's VAE overflows in fp16) and the text encoders once per example.

    The VAE and text encoders are moved to ``device`` for this and back to the CPU afterwards; the
    caller frees the GPU cache. ``on_item(done, total)`` reports progress for the UI.
    """
    from PIL import Image

    from faceswap_core.images import to_array

    vae = pipeline.vae
    inpaint = pipeline.unet.config.in_channels == 9
    aesthetic = bool(getattr(pipeline.config, "requires_aesthetics_score", False))
    scale = float(vae.config.scaling_factor)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    generator = torch.Generator().manual_seed(seed)
    vae_dtype = vae.dtype
    vae.to(device)
    if vae_dtype != torch.float32:
        vae.to(dtype=torch.float32)

    def encode(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = vae.encode(pixels.to(device, torch.float32)).latent_dist
        return ((dist.mean - shift) * scale).cpu(), (dist.std * scale).cpu()

    captions: list[str] = []
    means, stds, ids, masks, masked = [], [], [], [], []
    variants = [(item, mirrored) for item in items for mirrored in ((False, True) if flip else (False,))]
    with torch.no_grad():
        for done, (item, mirrored) in enumerate(variants):
            image, original, crop = square_crop(load_image(item.image, name=str(item.image)), resolution)
            if mirrored:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            pixels = torch.from_numpy(to_array(image)).permute(2, 0, 1).float().div(127.5).sub(1.0)[None]
            mean, std = encode(pixels)
            means.append(mean[0])
            stds.append(std[0])
            ids.append(time_ids(original, crop, resolution, aesthetic))
            captions.append(item.caption)
            if inpaint:
                boxes = [torch.ones(1, resolution, resolution)]
                boxes += [random_box_mask(resolution, generator) for _ in range(INPAINT_MASKS_PER_IMAGE - 1)]
                mask = torch.stack(boxes)  # (M, 1, H, W), 1 = inpaint, as the pipeline's mask
                latent_masked, _ = encode(pixels * (mask < 0.5))  # the pipeline's masked image, encoded by mean
                latent_size = mean.shape[-2:]
                masks.append(torch.nn.functional.interpolate(mask, size=latent_size))
                masked.append(latent_masked)
            if on_item:
                on_item(done + 1, len(variants))
        vae.to("cpu")
        if vae_dtype != torch.float32:
            vae.to(dtype=vae_dtype)
        input_ids = tokenize((pipeline.tokenizer, pipeline.tokenizer_2), captions)
        prompt_embeds = pooled = None
        if encode_captions:
            encoders = (pipeline.text_encoder, pipeline.text_encoder_2)
            for encoder in encoders:
                encoder.to(device, text_dtype)
            prompt_embeds, pooled = encode_text(encoders, input_ids)
            prompt_embeds, pooled = prompt_embeds.float().cpu(), pooled.float().cpu()
            for encoder in encoders:
                encoder.to("cpu")
    return CachedDataset(
        captions=captions,
        latent_mean=torch.stack(means),
        latent_std=torch.stack(stds),
        time_ids=torch.stack(ids),
        prompt_embeds=prompt_embeds,
        pooled_embeds=pooled,
        input_ids=input_ids,
        masks=torch.stack(masks) if inpaint else None,
        masked_latents=torch.stack(masked) if inpaint else None,
    )
