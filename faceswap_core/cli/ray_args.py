"""``--ray`` and ``--workers``, shared by the commands that can run on a Ray cluster (``batch``, ``video``)."""

from __future__ import annotations

import argparse
import os

from faceswap_core.cluster import LOCAL, RAY_ADDRESS_ENV
from faceswap_core.errors import SettingsError


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """The Ray group: the cluster's address (or its environment variable) and the number of engine actors."""
    cluster = parser.add_argument_group("Ray")
    cluster.add_argument(
        "--ray",
        default=os.environ.get(RAY_ADDRESS_ENV) or None,
        metavar="ADDRESS",
        help=f"run on the Ray cluster at ADDRESS (e.g. ray://head:10001, auto), or {LOCAL!r} to start one here "
        f"[{RAY_ADDRESS_ENV}]",
    )
    cluster.add_argument(
        "--workers", type=int, metavar="N", help="engine actors on the cluster (default: one per GPU, else one)"
    )


def checked_workers(args: argparse.Namespace) -> int | None:
    """``--workers`` when given (1 or more), else None: one per GPU."""
    if args.workers is not None and args.workers < 1:
        raise SettingsError(f"--workers must be 1 or more, got {args.workers}")
    return args.workers
