"""``person``: add a person from a few photos (ready to swap in seconds, no training) and list the people."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceswap_core.cli.faces import landmarks_option
from faceswap_core.cli.model_args import add_lora_dir, model_parent
from faceswap_core.settings import CLASS_WORDS, DEFAULT_CLASS_WORD


def register(subparsers: Any) -> None:
    person = subparsers.add_parser(
        "person",
        help="add a person from 1-5 photos, or list the people",
        description=(
            "A person is a folder in --lora-dir: aligned photos of their face (NAME/dataset/) and, once trained "
            "('train -o NAME' upgrades the same person), a LoRA. A person with photos only is swapped in through "
            "the image-prompt adapter: 'swap --person NAME' or '--face INDEX:NAME'."
        ),
    )
    commands = person.add_subparsers(dest="person_command", metavar="ACTION")
    commands.required = True
    add = commands.add_parser("add", help="align photos of a face into a new person", description=_ADD)
    add.add_argument("name", metavar="NAME", help="the person's name: letters, digits, '.', '_' or '-'")
    add.add_argument("photos", type=Path, nargs="+", metavar="PHOTO", help="1-5 photos where the face is clear")
    add.add_argument(
        "--class-word",
        default=DEFAULT_CLASS_WORD,
        help=f"who the photos show, for captions: {', '.join(CLASS_WORDS)} (default {DEFAULT_CLASS_WORD})",
    )
    landmarks_option(add)
    add_lora_dir(add)
    add.set_defaults(func=run_add)
    listing = commands.add_parser("list", help="the people as JSON: photos, LoRA, checkpoints")
    add_lora_dir(listing)
    listing.set_defaults(func=run_list)
    rank = commands.add_parser(
        "rank",
        parents=[model_parent()],
        help="rank a trained person's checkpoints by likeness; the recommended one is written beside the LoRA",
        description=(
            "Every checkpoint of NAME renders the same fixed-seed samples (expressions and angles the training "
            "photos lack), scored by identity distance to the training photos with a penalty for near-copies. "
            "Writes LORA_DIR/NAME/checkpoint_scores.json and prints it; the earliest checkpoint within a small "
            "margin of the best is recommended (none when the samples show no face)."
        ),
    )
    rank.add_argument("name", metavar="NAME", help="a trained person in --lora-dir")
    rank.set_defaults(func=run_rank)


_ADD = (
    "Write an aligned crop of the face in each PHOTO into LORA_DIR/NAME/dataset/ (with captions in metadata.csv). "
    "Photos without a face, or with several faces, are skipped with the reason; an existing name is refused."
)


def run_add(args: argparse.Namespace) -> int:
    from faceswap_core.loras import LoraRegistry
    from faceswap_core.people import People

    def report(name: str, path: Path | None, reason: str | None) -> None:
        if path is None:
            print(f"skipped: {reason}", file=sys.stderr)

    person, prepared = People(LoraRegistry(args.lora_dir)).add(
        args.name, args.photos, class_word=args.class_word, backend=args.backend, on_photo=report
    )
    for name, distance in prepared.unlike.items():
        print(f"check: {name} does not look like the others (distance {distance:.2f})", file=sys.stderr)
    skipped = [name for name, _ in prepared.skipped]
    print(json.dumps(_entry(person) | {"skipped": skipped, "unlike": prepared.unlike}))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from faceswap_core.loras import LoraRegistry
    from faceswap_core.people import People

    print(json.dumps([_entry(person) for person in People(LoraRegistry(args.lora_dir)).list()]))
    return 0


def run_rank(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.cli.model_args import model_spec
    from faceswap_core.engine import Engine
    from faceswap_core.training.ranking import rank_checkpoints

    quiet_libraries()
    ranking = rank_checkpoints(Engine(model_spec(args), lora_dir=args.lora_dir), args.name)
    print(ranking.note, file=sys.stderr)
    print(json.dumps(ranking.to_json()))
    return 0


def _entry(person: Any) -> dict[str, Any]:
    return {
        "name": person.name,
        "photos": [str(photo) for photo in person.photos],
        "lora": str(person.lora.path) if person.lora is not None else None,
        "label": person.label,
    }
