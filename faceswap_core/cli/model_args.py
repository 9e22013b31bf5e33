"""The model flags of the app and of every command that loads a model, defined once.

``app.py``, ``swap``, ``replay``, ``train`` (and the clip and batch commands) all call
:func:`add_model_flags`, so each option has one name, one help text and one environment variable
everywhere (a flag wins over its variable, the variable over the default), and :func:`model_spec`
turns them into the engine's :class:`ModelSpec`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from faceswap_core.settings import (
    DEFAULT_BASE_MODEL,
    DEFAULT_CONTROLNET,
    DEFAULT_IP_ADAPTER,
    DEVICES,
    FAST_LORA,
    FP16_FIX_VAE,
    ModelSpec,
)

LORA_DIR_ENV = "FACESWAP_LORA_DIR"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """A yes/no environment variable; anything else stops with a message naming it."""
    value = environ.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise SystemExit(f"error: {name}={environ[name]!r} is not a yes/no value; use 1 or 0")


def add_model_flags(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None, *, inference: bool = True
) -> None:
    """``--base``, ``--base-config``, ``--device``, ``--lora-dir``; with ``inference`` also ``--vae``,
    ``--low-vram``, ``--fast-lora``, ``--controlnet``, ``--face-parser`` and ``--ip-adapter``. Defaults
    come from ``environ`` (the process's)."""
    env = os.environ if environ is None else environ
    group = parser.add_argument_group("model")
    group.add_argument(
        "--base",
        default=env.get("FACESWAP_BASE_MODEL") or DEFAULT_BASE_MODEL,
        metavar="MODEL",
        help="base model: hub id, diffusers folder or single .safetensors SDXL checkpoint [FACESWAP_BASE_MODEL] "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--base-config",
        default=env.get("FACESWAP_BASE_CONFIG") or None,
        metavar="DIR",
        help="diffusers folder with the configs and tokenizers of a single-file --base, for offline use "
        "[FACESWAP_BASE_CONFIG]",
    )
    group.add_argument(
        "--device",
        default=env.get("FACESWAP_DEVICE") or "auto",
        choices=DEVICES,
        help="where the model runs [FACESWAP_DEVICE] (default: %(default)s: cuda, mps, then cpu)",
    )
    group.add_argument(
        "--lora-dir",
        type=Path,
        default=Path(env.get(LORA_DIR_ENV) or "lora_weights"),
        metavar="DIR",
        help=f"folder of people and LoRAs; training writes here [{LORA_DIR_ENV}] (default: %(default)s)",
    )
    if not inference:
        return
    group.add_argument(
        "--vae",
        default=env.get("FACESWAP_VAE") or None,
        metavar="VAE",
        help=f"VAE override, e.g. {FP16_FIX_VAE} for fp16 [FACESWAP_VAE]",
    )
    group.add_argument(
        "--low-vram",
        action="store_true",
        default=env_flag(env, "FACESWAP_LOW_VRAM"),
        help="offload model parts to the CPU, for 8-12 GB cards [FACESWAP_LOW_VRAM=1]",
    )
    group.add_argument(
        "--fast-lora",
        default=env.get("FACESWAP_FAST_LORA") or None,
        metavar="SOURCE",
        help=f"few-step LoRA for fast mode: hub id, folder or .safetensors file [FACESWAP_FAST_LORA] "
        f"(default: {FAST_LORA})",
    )
    group.add_argument(
        "--controlnet",
        default=env.get("FACESWAP_CONTROLNET") or DEFAULT_CONTROLNET,
        metavar="SOURCE",
        help="ControlNet for Keep expression, loaded on first use: hub id or diffusers folder [FACESWAP_CONTROLNET] "
        "(default: %(default)s)",
    )
    add_face_parser_flag(group, env)
    group.add_argument(
        "--ip-adapter",
        default=env.get("FACESWAP_IP_ADAPTER") or DEFAULT_IP_ADAPTER,
        metavar="SOURCE",
        help="image-prompt adapter for photos of a person: hub id or folder in its layout (plus-face, ViT-H "
        "encoder) [FACESWAP_IP_ADAPTER] (default: %(default)s)",
    )


def add_face_parser_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, environ: Mapping[str, str] | None = None
) -> None:
    """``--face-parser``: the engine's and ``faces mask``'s learned occluder source."""
    env = os.environ if environ is None else environ
    parser.add_argument(
        "--face-parser",
        default=env.get("FACESWAP_FACE_PARSER") or None,
        metavar="SOURCE",
        help="learned face parser for the automatic mask's occluders (hair, hands, clothes, glasses): "
        "'selfie-multiclass' (MediaPipe's, Apache-2.0, downloaded on first use), a URL or a .tflite file "
        "[FACESWAP_FACE_PARSER] (default: off)",
    )


def model_parent(*, inference: bool = True) -> argparse.ArgumentParser:
    """A parent parser (``parents=[model_parent()]``) with :func:`add_model_flags`."""
    parser = argparse.ArgumentParser(add_help=False)
    add_model_flags(parser, inference=inference)
    return parser


def add_lora_dir(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--lora-dir`` alone, for commands that read people but load no model."""
    parser.add_argument(
        "--lora-dir",
        type=Path,
        default=Path(os.environ.get(LORA_DIR_ENV) or "lora_weights"),
        metavar="DIR",
        help=f"folder of people and LoRAs [{LORA_DIR_ENV}] (default: %(default)s)",
    )


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`ModelSpec` of parsed model flags (a command without the inference flags gets their defaults)."""
    spec = ModelSpec(
        base=args.base,
        base_config=args.base_config,
        vae=getattr(args, "vae", None),
        ip_adapter=getattr(args, "ip_adapter", None) or ModelSpec.ip_adapter,
        fast_lora=getattr(args, "fast_lora", None),
        controlnet=getattr(args, "controlnet", None) or ModelSpec.controlnet,
        face_parser=getattr(args, "face_parser", None),
        device=args.device,
        low_vram=getattr(args, "low_vram", False),
    )
    spec.validate()
    return spec
