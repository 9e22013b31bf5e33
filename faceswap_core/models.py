"""Base-model loading (hub id, local folder, single checkpoint file), device/dtype choice, tiny test model.

Loading is kept apart from running (the engine owns the running): every way a user can name a
base model ends in the same ``StableDiffusionXLInpaintPipeline`` or a :class:`ModelLoadError` whose
one sentence says how to fix it. The tiny model exercises the same loading and inference code in
tests and CI, where no real weights can be downloaded.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import ModelLoadError, UnsafeWeightsError, first_line
from faceswap_core.loras import PICKLE_SUFFIXES, check_safe_weights
from faceswap_core.settings import DEFAULT_BASE_MODEL, DEVICES, ModelSpec

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionXLInpaintPipeline

SINGLE_FILE_SUFFIXES = (".safetensors",)
# diffusers and transformers build a model's layers on the "meta" device through process-wide hooks, so two
# loads at once (a training's model while the app loads its own) hand each other empty tensors: one at a time.
LOADING = threading.Lock()
SDXL_NATIVE_RESOLUTION = 1024


def pick_device(requested: str | None = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for "auto"; an explicit device that is absent is a user error."""
    import torch

    name = (requested or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ModelLoadError(f"device {requested!r} is unknown; choose one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {requested!r} was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not mps_ok:
        raise ModelLoadError("device 'mps' was asked for but Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def default_dtype(device: torch.device) -> torch.dtype:
    """fp16 on GPUs (half the memory, much faster); fp32 on CPU where fp16 is slow or unsupported."""
    import torch

    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


def native_resolution(pipeline: Any) -> int:
    """The square size the model was trained at: 1024 for SDXL, much smaller for the tiny test model."""
    sample_size = getattr(pipeline.unet.config, "sample_size", None)
    if not sample_size:
        return SDXL_NATIVE_RESOLUTION
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    return int(sample_size) * int(pipeline.vae_scale_factor)


def load_inpaint_pipeline(model: ModelSpec, *, dtype: torch.dtype | None = None) -> StableDiffusionXLInpaintPipeline:
    """Load an SDXL inpainting pipeline from a hub id, a local diffusers folder or one .safetensors file.

    Works for the plain 4-channel SDXL base and for 9-channel inpainting UNets alike (the pipeline
    reads the UNet's ``in_channels``). ``model.vae`` overrides the VAE, e.g. the fp16-fix VAE that
    does not overflow in half precision. ``model.low_vram`` moves each sub-model to the GPU only
    while it runs. ``model.base_config`` is a local diffusers SDXL folder whose configs and
    tokenizers describe a single-file base: with it nothing is fetched from the hub, so single files
    load offline.
    """
    torch_device = pick_device(model.device)
    torch_dtype = dtype or default_dtype(torch_device)
    with LOADING:
        pipeline = _load_base(model.base, torch_dtype, model.base_config)
        if model.vae:
            pipeline.vae = _load_vae(model.vae, torch_dtype)
    if model.low_vram and torch_device.type == "cuda":
        pipeline.enable_model_cpu_offload(device=torch_device)
    else:
        pipeline.to(torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _load_base(base: str, dtype: torch.dtype, config: str | None) -> StableDiffusionXLInpaintPipeline:
    from diffusers import StableDiffusionXLInpaintPipeline

    path = Path(base).expanduser()
    if config and path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise ModelLoadError(f"{config}: --base-config only applies to a single .safetensors --base, not to {base}")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeightsError(
            f"{base}: {path.suffix} checkpoints are pickles that can run code when loaded; "
            "use a .safetensors version of the model instead"
        )
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(f"{base}: no such checkpoint file; check the path given with --base")
        check_safe_weights(path)
        options = _single_file_config(config) if config else {}
        return _guarded(
            base, lambda: StableDiffusionXLInpaintPipeline.from_single_file(str(path), dtype=dtype, **options)
        )
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"{base}: the folder has no model_index.json; pass a diffusers model folder "
                "(as written by save_pretrained) or a single .safetensors file"
            )
        return _guarded(base, lambda: StableDiffusionXLInpaintPipeline.from_pretrained(str(path), dtype=dtype))
    if looks_like_path(base):
        raise ModelLoadError(f"{base}: no such folder or file; check the path given with --base")
    return _guarded(base, lambda: _from_hub(base, dtype))


def _single_file_config(config: str) -> dict[str, Any]:
    """A local folder supplies every config and tokenizer, so diffusers must not try the hub at all."""
    folder = Path(config).expanduser()
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(
            f"{config}: --base-config must be a diffusers SDXL folder with model_index.json "
            f"(e.g. `hf download {DEFAULT_BASE_MODEL} --exclude '*.safetensors' --local-dir DIR`)"
        )
    return {"config": str(folder), "local_files_only": True}


def _from_hub(repo_id: str, dtype: torch.dtype) -> StableDiffusionXLInpaintPipeline:
    """Prefer the fp16 weight variant where the repo has one: half the download for the same result."""
    from diffusers import StableDiffusionXLInpaintPipeline

    if dtype.is_floating_point and dtype.itemsize == 2:
        try:
            return StableDiffusionXLInpaintPipeline.from_pretrained(repo_id, dtype=dtype, variant="fp16")
        except (OSError, ValueError) as err:
            if _is_access_problem(err):
                raise
    return StableDiffusionXLInpaintPipeline.from_pretrained(repo_id, dtype=dtype)


def _load_vae(vae: str, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL

    path = Path(vae).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeightsError(f"{vae}: {path.suffix} files are pickles that can run code; use a .safetensors VAE")
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(f"{vae}: no such VAE file; check the path given with --vae")
        check_safe_weights(path)
        return _guarded(vae, lambda: AutoencoderKL.from_single_file(str(path), dtype=dtype), what="VAE")
    if path.is_dir():
        return _guarded(vae, lambda: AutoencoderKL.from_pretrained(str(path), dtype=dtype), what="VAE")
    if looks_like_path(vae):
        raise ModelLoadError(f"{vae}: no such VAE folder or file; check the path given with --vae")
    return _guarded(vae, lambda: AutoencoderKL.from_pretrained(vae, dtype=dtype), what="VAE")


def looks_like_path(name: str) -> bool:
    """Hub ids are exactly "owner/name"; anything else with separators or dots is meant as a path."""
    if name.startswith((".", "/", "~")) or os.sep in name.replace("/", "") or name.count("/") != 1:
        return True
    return any(not part for part in name.split("/"))


def _is_access_problem(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(word in text for word in ("gated", "401", "403", "token", "offline", "connection", "resolve"))


def _guarded(name: str, load: Any, *, what: str = "base model") -> Any:
    """Run a diffusers loader and turn its many failure modes into one sentence saying what to do."""
    try:
        return load()
    except (UnsafeWeightsError, ModelLoadError):
        raise
    except Exception as err:  # diffusers/hub raise OSError, ValueError, HTTP errors, EnvironmentError...
        raise ModelLoadError(_explain(name, err, what)) from err


def _explain(name: str, err: BaseException, what: str) -> str:
    text = f"{type(err).__name__}: {err}".lower()
    single_file = name.lower().endswith(SINGLE_FILE_SUFFIXES)
    if "gated" in text or "403" in text or ("accept" in text and "license" in text):
        return (
            f"{what} {name} is gated: accept its licence on huggingface.co, run `hf auth login`, "
            "then retry (or pass a local folder with --base)"
        )
    if "401" in text or ("token" in text and ("invalid" in text or "unauthorized" in text)):
        return f"{what} {name} needs a Hugging Face token: run `hf auth login` (or pass a local folder with --base)"
    if "repository not found" in text or "404" in text or "is not a valid model identifier" in text:
        return f"{what} {name} was not found on the Hugging Face hub; check the name or pass a local folder with --base"
    if any(word in text for word in ("offline", "connect", "resolve", "cannot find the requested files", "cache")):
        if single_file:
            return (
                f"{name}: a single checkpoint file needs SDXL's configs and tokenizers, which cannot be downloaded "
                "now; pass a diffusers SDXL folder with --base-config, or run "
                f"`hf download {DEFAULT_BASE_MODEL} --exclude '*.safetensors'` once while online"
            )
        if looks_like_path(name):
            return f"{what} {name} is incomplete (files are missing); pass a complete diffusers folder with --base"
        return (
            f"{what} {name} is not in the local cache and cannot be downloaded now; "
            f"download it with `hf download {name}` while online, or pass a local folder with --base"
        )
    return f"{what} {name} could not be loaded ({first_line(err)}); pass a diffusers folder or SDXL .safetensors file"


# --- tiny random model for tests, CI and smoke checks -------------------------------------------

TINY_WORDS = ("a", "photo", "of", "woman", "man", "person", "face", "blurry", "the")


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable unicode table (GPT-2 byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def tiny_vocabulary() -> tuple[dict[str, int], list[str]]:
    """A byte-level CLIP vocabulary small enough for a 1000-row embedding, with merges for a few words.

    Every byte (with and without the end-of-word marker) is a token, so any text tokenizes; the
    merges make common prompt words single tokens, as with the real tokenizer.
    """
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in TINY_WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            merged = parts[0] + parts[1]
            if merged not in tokens:
                tokens.append(merged)
            parts = [merged, *parts[2:]]
    merges = list(dict.fromkeys(merges))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def tiny_tokenizer(vocab_dir: Path) -> Any:
    """A CLIP tokenizer from files written locally: real byte-level BPE, no download."""
    from transformers import CLIPTokenizer

    vocab, merges = tiny_vocabulary()
    vocab_dir.mkdir(parents=True, exist_ok=True)
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(vocab=str(vocab_dir / "vocab.json"), merges=str(vocab_dir / "merges.txt"), model_max_length=77)


# The scheduler of SDXL base 1.0 (scheduler/scheduler_config.json), shared by the tiny and full-size builders.
SDXL_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}


def build_tiny_pipeline(
    *, inpaint_unet: bool = False, seed: int = 0, vocab_dir: Path
) -> StableDiffusionXLInpaintPipeline:
    """A randomly initialised SDXL inpainting pipeline with diffusers-test dimensions (64 px native)."""
    tokenizer = tiny_tokenizer(vocab_dir)
    unet = {
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "sample_size": 32,
        "in_channels": 9 if inpaint_unet else 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "transformer_layers_per_block": (1, 2),
        "projection_class_embeddings_input_dim": 80,  # 6 size/crop ids x 8 + the 32-d pooled text embedding
        "cross_attention_dim": 72,  # both text encoders' hidden states concatenated (32 + 40)
    }
    vae = {
        "block_out_channels": [32, 64],
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "latent_channels": 4,
        "sample_size": 128,
        "force_upcast": False,  # fp32 only: nothing to upcast, and upcasting re-casts the VAE every call
    }
    text_encoder = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "layer_norm_eps": 1e-05,
        "num_attention_heads": 4,
        "num_hidden_layers": 5,
        "vocab_size": max(1000, len(tokenizer)),
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "projection_dim": 32,
    }
    # Wider than the first, as in SDXL (768 vs 1280): single-file loading tells the two apart by width.
    text_encoder_2 = {**text_encoder, "hidden_size": 40}
    return _random_pipeline(tokenizer, unet, vae, (text_encoder, text_encoder_2), seed=seed)


def save_tiny_model(out_dir: str | os.PathLike, *, inpaint_unet: bool = False, seed: int = 0) -> Path:
    """Write a tiny random SDXL inpainting pipeline with ``save_pretrained``; returns the folder.

    Its output is noise: it exists so tests exercise real loading and inference in seconds on CPU.
    """
    import tempfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = build_tiny_pipeline(inpaint_unet=inpaint_unet, seed=seed, vocab_dir=Path(scratch))
        pipeline.save_pretrained(out, safe_serialization=True)
    return out


def _random_pipeline(
    tokenizer: Any,
    unet: dict[str, Any],
    vae: dict[str, Any],
    text_encoders: tuple[dict[str, Any], dict[str, Any]],
    *,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> StableDiffusionXLInpaintPipeline:
    """Assemble an SDXL inpainting pipeline from component configurations, with seeded random weights.

    Each model is made directly on ``device`` (the meta device allocates nothing) and cast to
    ``dtype`` before the next one is made, so a full-size build never holds two fp32 copies at once.
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    builders = (
        (seed, lambda: UNet2DConditionModel(**unet)),
        (seed, lambda: AutoencoderKL(**vae)),
        (seed, lambda: CLIPTextModel(CLIPTextConfig(**text_encoders[0], **special))),
        (seed + 1, lambda: CLIPTextModelWithProjection(CLIPTextConfig(**text_encoders[1], **special))),
    )
    models = []
    with torch.device(device):
        for model_seed, build in builders:
            torch.manual_seed(model_seed)
            model = build()
            models.append(model.to(dtype) if dtype is not None else model)
    made_unet, made_vae, made_text_encoder, made_text_encoder_2 = models
    return StableDiffusionXLInpaintPipeline(
        vae=made_vae,
        text_encoder=made_text_encoder,
        text_encoder_2=made_text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=made_unet,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


# --- full-size SDXL with random weights, for benchmarks and size checks ------------------------

# stabilityai/stable-diffusion-xl-base-1.0, unet/config.json (the keys that differ from diffusers' defaults)
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
    "upcast_attention": False,
}
# vae/config.json; force_upcast off as with the fp16-fix VAE the engine is meant to run with in fp16
SDXL_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": False,
}
_SDXL_TEXT_COMMON: dict[str, Any] = {"vocab_size": 49408, "max_position_embeddings": 77, "layer_norm_eps": 1e-05}
# text_encoder/config.json (CLIP ViT-L/14) and text_encoder_2/config.json (OpenCLIP ViT-bigG/14)
SDXL_TEXT_ENCODER: dict[str, Any] = {
    **_SDXL_TEXT_COMMON,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
SDXL_TEXT_ENCODER_2: dict[str, Any] = {
    **_SDXL_TEXT_COMMON,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}


def build_sdxl_pipeline(
    *, vocab_dir: Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, seed: int = 0
) -> StableDiffusionXLInpaintPipeline:
    """Full-size SDXL base 1.0 with random weights: the real model's cost in time and memory, no download.

    For benchmarks on a GPU, and (on the meta device) for checking the configurations against the
    real model's sizes. The tokenizer is the tiny local one: token ids only pick embedding rows, which
    does not change the cost.
    """
    pipeline = _random_pipeline(
        tiny_tokenizer(vocab_dir),
        SDXL_UNET,
        SDXL_VAE,
        (SDXL_TEXT_ENCODER, SDXL_TEXT_ENCODER_2),
        seed=seed,
        device=device,
        dtype=dtype,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
