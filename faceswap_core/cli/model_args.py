"""The base-model flags every model-loading command shares, so each option has one name everywhere.

``swap`` and ``train`` take these from one parent parser (the app reads the same names, with
environment variables behind them): ``--base``, ``--base-config``, ``--device``, ``--lora-dir``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from faceswap_core.settings import DEFAULT_BASE_MODEL, DEVICES, ModelSpec

LORA_DIR_ENV = "FACESWAP_LORA_DIR"


def model_parent() -> argparse.ArgumentParser:
    """A parent parser (``parents=[model_parent()]``) with the base-model and LoRA-folder flags."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("base model")
    group.add_argument(
        "--base",
        default=DEFAULT_BASE_MODEL,
        metavar="MODEL",
        help=f"hub id, diffusers folder or single .safetensors SDXL checkpoint (default {DEFAULT_BASE_MODEL})",
    )
    group.add_argument(
        "--base-config",
        metavar="DIR",
        help="diffusers folder with the configs and tokenizers of a single-file --base, for offline use",
    )
    group.add_argument("--device", choices=DEVICES, default="auto", help="default: auto (cuda, mps, then cpu)")
    add_lora_dir(group)
    return parser


def add_lora_dir(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--lora-dir``: the folder of people and LoRAs, the same flag for every command that reads it."""
    parser.add_argument(
        "--lora-dir",
        type=Path,
        default=Path(os.environ.get(LORA_DIR_ENV, "lora_weights")),
        metavar="DIR",
        help=f"folder of people and LoRAs (default ${LORA_DIR_ENV} or lora_weights)",
    )


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`ModelSpec` of parsed flags (and the inference-only ones where the command has them)."""
    spec = ModelSpec(
        base=args.base,
        base_config=args.base_config,
        vae=getattr(args, "vae", None),
        ip_adapter=getattr(args, "ip_adapter", None) or ModelSpec.ip_adapter,
        fast_lora=getattr(args, "fast_lora", None),
        controlnet=getattr(args, "controlnet", None) or ModelSpec.controlnet,
        device=args.device,
        low_vram=getattr(args, "low_vram", False),
    )
    spec.validate()
    return spec
