"""``batch``: one request applied to every photo of a folder, locally or on a Ray cluster; resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceswap_core.cli.model_args import model_parent, model_spec
from faceswap_core.cli.ray_args import add_ray_flags, checked_workers
from faceswap_core.cli.swap import add_request_options, build_request


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "batch",
        parents=[model_parent()],
        help="apply one swap to every photo of a folder (locally, or on Ray with --ray)",
        description=(
            "Runs the request the flags (or --request) describe on every photo of IN_DIR and writes OUT_DIR/STEM.png "
            "for each, plus OUT_DIR/batch.json: every file with what was done, or why it was skipped (not an image, "
            "no face, ...). The seed is drawn once for the whole batch. Results already in OUT_DIR are kept, so a "
            "stopped batch resumes when run again with the same request. With --ray the photos are swapped by a "
            "pool of Ray actors, each holding one engine (one GPU each where the cluster has GPUs); IN_DIR, the "
            "request's files and --lora-dir must be at the same paths on every node. The results are the same bytes."
        ),
    )
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of photos")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the results")
    parser.add_argument(
        "--request", type=Path, metavar="FILE.json", help="a swap written down as JSON (its photo is each of IN_DIR)"
    )
    add_request_options(parser)
    add_ray_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.cli.swap import check_people
    from faceswap_core.engine import Engine
    from faceswap_core.jobs.batch import LocalExecutor, run_batch

    quiet_libraries()
    workers = checked_workers(args)
    args.target = args.in_dir  # the request's photo: each photo of the folder in turn
    request = build_request(args)
    engine = Engine(model_spec(args), lora_dir=args.lora_dir, landmarks=args.backend)
    check_people(engine, request)  # a missing or unsafe LoRA fails here, before any model loads
    if args.ray:
        from faceswap_core.cluster import connect
        from faceswap_core.cluster.data import RayExecutor

        connect(args.ray)
        executor: Any = RayExecutor(engine.model, str(args.lora_dir), workers=workers, landmarks=args.backend)
    else:
        executor = LocalExecutor(engine)
    report = run_batch(args.in_dir, args.output, request, executor, on_item=_print_item)
    print(json.dumps({"output": str(args.output), "report": str(args.output / "batch.json"), **report["counts"]}))
    return 0


def _print_item(entry: dict[str, Any]) -> None:
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    print(f"{entry['photo']}: {entry['status']}{reason}", file=sys.stderr, flush=True)
