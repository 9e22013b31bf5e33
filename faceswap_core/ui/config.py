"""How the app is configured: command-line flags, each with an environment variable behind it.

Containers and Spaces set environment variables; people on a workstation type flags. A flag wins
over its variable, and the variable over the default, so one image can serve both.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from faceswap_core.settings import (
    DEFAULT_BASE_MODEL,
    DEFAULT_CONTROLNET,
    DEFAULT_IP_ADAPTER,
    DEFAULT_VQA_MODEL,
    DEVICES,
    FAST_LORA,
    ModelSpec,
)

DEFAULT_PORT = 7860
DEFAULT_HOST = "127.0.0.1"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class AppConfig:
    """Everything ``app.py`` needs to build the engine and serve the page."""

    model: ModelSpec = ModelSpec()
    lora_dir: str = "lora_weights"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    share: bool = False
    auth: tuple[str, str] | None = None  # one user name and password asked for by the page (--auth)
    vqa_model: str = DEFAULT_VQA_MODEL  # the Train tab's automatic captions, offered when it is on this machine


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise SystemExit(f"error: {name}={environ[name]!r} is not a yes/no value; use 1 or 0")


def _env_port(environ: Mapping[str, str]) -> int:
    value = environ.get("FACESWAP_PORT", "").strip() or str(DEFAULT_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"error: FACESWAP_PORT={value!r} is not a port number (1-65535)")
    return int(value)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The flags, with defaults taken from ``environ`` so ``--help`` shows what will actually be used."""
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="Face swap in the browser: SDXL inpainting with a LoRA of the person, and LoRA training.",
        epilog="Every flag can also be set by its environment variable (the flag wins).",
    )
    parser.add_argument(
        "--base",
        default=environ.get("FACESWAP_BASE_MODEL") or DEFAULT_BASE_MODEL,
        metavar="MODEL",
        help="base model: hub id, local folder or single .safetensors file [FACESWAP_BASE_MODEL] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--base-config",
        default=environ.get("FACESWAP_BASE_CONFIG") or None,
        metavar="DIR",
        help="diffusers folder with the configs for a single-file --base, for offline use [FACESWAP_BASE_CONFIG]",
    )
    parser.add_argument(
        "--fast-lora",
        default=environ.get("FACESWAP_FAST_LORA") or None,
        metavar="SOURCE",
        help=f"few-step LoRA for the Fast switch: hub id, folder or .safetensors file [FACESWAP_FAST_LORA] "
        f"(default: {FAST_LORA})",
    )
    parser.add_argument(
        "--controlnet",
        default=environ.get("FACESWAP_CONTROLNET") or DEFAULT_CONTROLNET,
        metavar="SOURCE",
        help="ControlNet for Keep expression, loaded on first use: hub id or diffusers folder [FACESWAP_CONTROLNET] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--ip-adapter",
        default=environ.get("FACESWAP_IP_ADAPTER") or DEFAULT_IP_ADAPTER,
        metavar="SOURCE",
        help="image-prompt adapter for photos of a person: hub id or folder in its layout [FACESWAP_IP_ADAPTER] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--vqa-model",
        default=environ.get("FACESWAP_VQA_MODEL") or DEFAULT_VQA_MODEL,
        metavar="SOURCE",
        help="captioning model the Train tab offers when it is on this machine (hub id in the cache, or a "
        "folder) [FACESWAP_VQA_MODEL] (default: %(default)s)",
    )
    parser.add_argument(
        "--lora-dir",
        default=environ.get("FACESWAP_LORA_DIR") or "lora_weights",
        metavar="DIR",
        help="folder of LoRA weights; trained LoRAs are written here [FACESWAP_LORA_DIR] (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default=environ.get("FACESWAP_DEVICE") or "auto",
        choices=DEVICES,
        help="where the model runs [FACESWAP_DEVICE] (default: %(default)s)",
    )
    parser.add_argument(
        "--low-vram",
        action="store_true",
        default=_env_flag(environ, "FACESWAP_LOW_VRAM"),
        help="offload model parts to the CPU, for 8-12 GB cards [FACESWAP_LOW_VRAM=1]",
    )
    parser.add_argument(
        "--host",
        default=environ.get("FACESWAP_HOST") or environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST,
        help="address to listen on; 0.0.0.0 in a container [FACESWAP_HOST, else GRADIO_SERVER_NAME as Spaces set it] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_env_port(environ),
        help="port to listen on [FACESWAP_PORT] (default: %(default)s)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=_env_flag(environ, "FACESWAP_SHARE"),
        help="also serve through a temporary public gradio.live link [FACESWAP_SHARE=1]",
    )
    parser.add_argument(
        "--auth",
        default=environ.get("FACESWAP_AUTH") or None,
        metavar="USER:PASSWORD",
        help="ask for this user name and password before showing the page or answering the API [FACESWAP_AUTH]",
    )
    return parser


def _auth(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise SystemExit("error: --auth (FACESWAP_AUTH) must look like USER:PASSWORD, both non-empty")
    return user, password


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Flags over environment over defaults."""
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(argv)
    if not 0 < args.port < 65536:
        raise SystemExit(f"error: --port {args.port} is not a port number (1-65535)")
    model = ModelSpec(
        base=args.base,
        base_config=args.base_config,
        ip_adapter=args.ip_adapter,
        fast_lora=args.fast_lora,
        controlnet=args.controlnet,
        device=args.device,
        low_vram=args.low_vram,
    )
    return AppConfig(
        model=model,
        lora_dir=args.lora_dir,
        host=args.host,
        port=args.port,
        share=args.share,
        auth=_auth(args.auth),
        vqa_model=args.vqa_model,
    )
