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
from faceswap_core.cluster import LOCAL, RAY_ADDRESS_ENV
from faceswap_core.settings import (
    DEFAULT_FACE_BACKEND,
    DEFAULT_VQA_MODEL,
    FACE_BACKENDS,
    PHOTO_TTL_S,
    ModelSpec,
    PublicLimits,
)

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
    shared_people: bool = False  # every visitor sees and changes every person (a private workstation)
    photo_ttl_s: float = PHOTO_TTL_S  # how long a visitor's uploaded photo is kept on the server unused
    limits: PublicLimits = PublicLimits()  # what one request may ask for
    exclusive_training: bool = False  # a training parks the swap pipeline on the CPU (a GPU too small for both)
    landmarks: str = DEFAULT_FACE_BACKEND  # landmark backend of every face found (--landmarks)
    gpus: int = 1  # engines on this machine, one per GPU (cuda:0 ..): as many swaps run at once
    ray: str | None = None  # a Ray cluster address: swaps run on a Serve deployment there, not in this process
    ray_min_replicas: int = 1
    ray_max_replicas: int = 1


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
    parser.add_argument(
        "--shared-people",
        action="store_true",
        default=env_flag(environ, "FACESWAP_SHARED_PEOPLE"),
        help="every visitor sees, uses and changes every person (a private workstation); by default a "
        "visitor's people are theirs alone and the folder's others are read-only [FACESWAP_SHARED_PEOPLE=1]",
    )
    parser.add_argument(
        "--photo-ttl",
        type=float,
        default=float(environ.get("FACESWAP_PHOTO_TTL") or PHOTO_TTL_S),
        metavar="SECONDS",
        help="how long an uploaded photo stays on the server after its last use [FACESWAP_PHOTO_TTL] "
        "(default: %(default)s)",
    )
    limits = PublicLimits()
    for flag, field, meaning in (
        ("--max-face-steps", "max_face_steps", "most faces x denoising steps in one swap request"),
        ("--max-train-steps", "max_train_steps", "most steps of one training run"),
        ("--max-train-resolution", "max_train_resolution", "highest training resolution (pixels)"),
        ("--max-trainings", "max_trainings", "trainings at once, beside the swaps; others are told until when"),
    ):
        variable = "FACESWAP_" + field.upper()
        parser.add_argument(
            flag,
            type=int,
            default=int(environ.get(variable) or getattr(limits, field)),
            metavar="N",
            help=f"{meaning} [{variable}] (default: %(default)s)",
        )
    parser.add_argument(
        "--exclusive-training",
        action="store_true",
        default=env_flag(environ, "FACESWAP_EXCLUSIVE_TRAINING"),
        help="a training moves the swap model off the GPU and swaps wait until it ends: for a GPU too small to "
        "hold both (SDXL on 24 GB) [FACESWAP_EXCLUSIVE_TRAINING=1]",
    )
    parser.add_argument(
        "--landmarks",
        default=environ.get("FACESWAP_LANDMARKS") or DEFAULT_FACE_BACKEND,
        choices=FACE_BACKENDS,
        help="landmark backend for masks, alignment and identity crops [FACESWAP_LANDMARKS] (default: %(default)s, "
        "free for commercial use; dlib's 68-point model is non-commercial)",
    )
    parser.add_argument(
        "--gpus",
        type=int,
        default=_env_count(environ, "FACESWAP_GPUS"),
        metavar="N",
        help="one engine (a resident pipeline) on each of the first N CUDA GPUs, and N swaps at once; without "
        "Ray [FACESWAP_GPUS] (default: %(default)s)",
    )
    cluster = parser.add_argument_group("Ray (optional: pip install 'ray[data,serve]')")
    cluster.add_argument(
        "--ray",
        default=environ.get(RAY_ADDRESS_ENV) or None,
        metavar="ADDRESS",
        help=f"swap on a Ray Serve deployment of the engine on the cluster at ADDRESS ({LOCAL!r}: start one here); "
        f"this process keeps the page and loads no model [{RAY_ADDRESS_ENV}]",
    )
    cluster.add_argument(
        "--ray-min-replicas",
        type=int,
        default=_env_count(environ, "FACESWAP_RAY_MIN_REPLICAS"),
        metavar="N",
        help="engine replicas kept running, one GPU each [FACESWAP_RAY_MIN_REPLICAS] (default: %(default)s)",
    )
    cluster.add_argument(
        "--ray-max-replicas",
        type=int,
        default=_env_count(environ, "FACESWAP_RAY_MAX_REPLICAS"),
        metavar="N",
        help="replicas the deployment may scale up to while swaps wait; also how many swaps the page sends at once "
        "[FACESWAP_RAY_MAX_REPLICAS] (default: %(default)s)",
    )
    return parser


def _env_count(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name, "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"error: {name}={value!r} is not a count (1 or more)")
    return int(value)


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
    if not 0 < args.photo_ttl < float("inf"):
        raise SystemExit(f"error: --photo-ttl {args.photo_ttl} must be a positive number of seconds")
    if args.landmarks not in FACE_BACKENDS:  # argparse checks choices on flags, not on defaults from the environment
        raise SystemExit(f"error: FACESWAP_LANDMARKS={args.landmarks!r} is not one of {', '.join(FACE_BACKENDS)}")
    if args.max_trainings < 1:
        raise SystemExit(f"error: --max-trainings {args.max_trainings} must be 1 or more")
    if not 0 < args.port < 65536:
        raise SystemExit(f"error: --port {args.port} is not a port number (1-65535)")
    if not 1 <= args.ray_min_replicas <= args.ray_max_replicas:
        raise SystemExit("error: --ray-min-replicas and --ray-max-replicas need 1 <= min <= max")
    if args.gpus < 1:
        raise SystemExit(f"error: --gpus {args.gpus} must be 1 or more")
    if args.gpus > 1 and args.ray:
        raise SystemExit("error: --gpus is for one machine without Ray; on a cluster use --ray-max-replicas")
    return AppConfig(
        model=model_spec(args),
        lora_dir=str(args.lora_dir),
        host=args.host,
        port=args.port,
        share=args.share,
        auth=_auth(args.auth),
        vqa_model=args.vqa_model,
        shared_people=args.shared_people,
        photo_ttl_s=args.photo_ttl,
        limits=PublicLimits(
            max_face_steps=args.max_face_steps,
            max_train_steps=args.max_train_steps,
            max_train_resolution=args.max_train_resolution,
            max_trainings=args.max_trainings,
        ),
        exclusive_training=args.exclusive_training,
        landmarks=args.landmarks,
        gpus=args.gpus,
        ray=args.ray,
        ray_min_replicas=args.ray_min_replicas,
        ray_max_replicas=args.ray_max_replicas,
    )
