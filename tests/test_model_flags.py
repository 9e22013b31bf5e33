"""One definition of the model flags: the app and every model-loading command agree on names, help and defaults."""

from __future__ import annotations

import argparse

from faceswap_core.cli import build_parser as cli_parser
from faceswap_core.ui.config import build_parser as app_parser
from faceswap_core.ui.config import parse_config

MODEL_FLAGS = (
    "--base",
    "--base-config",
    "--device",
    "--lora-dir",
    "--vae",
    "--low-vram",
    "--fast-lora",
    "--ip-adapter",
)


def _flags(parser: argparse.ArgumentParser) -> dict[str, tuple[object, ...]]:
    return {
        option: (action.default, action.help, action.choices)
        for action in parser._actions
        for option in action.option_strings
        if option in MODEL_FLAGS
    }


def _command(name: str) -> argparse.ArgumentParser:
    subparsers = next(a for a in cli_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def test_app_and_commands_share_the_model_flags() -> None:
    app = _flags(app_parser({}))
    assert set(app) == set(MODEL_FLAGS)
    for command in ("swap", "replay", "video"):
        assert _flags(_command(command)) == app
    train = _flags(_command("train"))
    assert train == {flag: app[flag] for flag in ("--base", "--base-config", "--device", "--lora-dir")}


def test_an_environment_variable_sets_the_same_flag_for_app_and_commands(monkeypatch) -> None:
    monkeypatch.setenv("FACESWAP_BASE_MODEL", "/models/mine")
    monkeypatch.setenv("FACESWAP_VAE", "/models/vae")
    args = _command_args("swap", ["photo.jpg", "-o", "out.png"])
    assert args.base == "/models/mine" and args.vae == "/models/vae"
    config = parse_config([])
    assert config.model.base == "/models/mine" and config.model.vae == "/models/vae"


def _command_args(name: str, argv: list[str]) -> argparse.Namespace:
    return cli_parser().parse_args([name, *argv])
