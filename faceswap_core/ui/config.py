"""How the app is configured: command-line flags, each with an environment variable behind it.

Containers and Spaces set environment variables; people on a workstation type flags. A flag wins
over its variable, and the variable over the default, so one image can serve both.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from faceswap_core.cli.model_args import add_model_flags, env_flag, model_spec
from faceswap_core.settings import DEFAULT_VQA_MODEL, ModelSpec

DEFAULT_PORT = 7860
DEFAULT_HOST = "127.0.0.1"


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
    add_model_flags(parser, environ)
    parser.add_argument(
        "--vqa-model",
        default=environ.get("FACESWAP_VQA_MODEL") or DEFAULT_VQA_MODEL,
        metavar="SOURCE",
        help="captioning model the Train tab offers when it is on this machine (hub id in the cache, or a "
        "folder) [FACESWAP_VQA_MODEL] (default: %(default)s)",
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
        default=env_flag(environ, "FACESWAP_SHARE"),
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
    return AppConfig(
        model=model_spec(args),
        lora_dir=str(args.lora_dir),
        host=args.host,
        port=args.port,
        share=args.share,
        auth=_auth(args.auth),
        vqa_model=args.vqa_model,
    )
