"""``python -m faceswap_core <command>``: argparse subcommands over the library.

Each submodule here defines ``register(subparsers)`` for its commands and imports heavy libraries
(torch, diffusers) inside its handlers, so ``--help`` stays instant. User errors
(:class:`FaceswapError`, bad arguments) print ONE line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from faceswap_core import __version__
from faceswap_core.errors import FaceswapError

COMMAND_MODULES = ("faces", "person", "tiny", "swap", "replay", "train", "video")
USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus a message on errors; we promise one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m faceswap_core",
        description="Replace a face in a photo with SDXL inpainting and a LoRA of the person.",
    )
    parser.add_argument("--version", action="version", version=f"faceswap {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"faceswap_core.cli.{name}").register(subparsers)
    return parser


def quiet_libraries() -> None:
    """diffusers/transformers log hub retries, warnings and load bars on stderr; commands promise one line on errors.

    Called by the commands that load models, inside their handlers, so ``--help`` stays instant.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except FaceswapError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
