"""``replay``: run a result again from the record in its PNG, and say whether the pixels came out the same."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from faceswap_core.cli.model_args import model_parent, model_spec
from faceswap_core.errors import SettingsError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        parents=[model_parent()],
        help="re-run a result from the request stored in its PNG",
        description=(
            "Reads the request a result PNG was made from (settings, seeds, people by name, the painted mask) "
            "and runs it again on the same base model; prints whether the new pixels equal the old ones. "
            "The photo is looked for by its recorded name next to RESULT unless --image is given, and checked "
            "against the recorded content hash."
        ),
    )
    parser.add_argument("result", type=Path, metavar="RESULT.png", help="a PNG written by swap or the app")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png", help="where to write it")
    parser.add_argument("--image", type=Path, metavar="PHOTO", help="the photo the result was made from")
    parser.add_argument(
        "--reference-face", type=Path, metavar="PHOTO", help="the reference photo, when one chose the face"
    )
    parser.add_argument("--identity", type=Path, nargs="+", metavar="PHOTO", help="the photos of the person it used")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.engine import Engine
    from faceswap_core.files import check_writable
    from faceswap_core.images import load_image
    from faceswap_core.records import read_result, replay_request, save_result

    quiet_libraries()
    if args.output.suffix.lower() != ".png":
        raise SettingsError(f"{args.output}: the output must be a .png file (the parameters are stored in it)")
    check_writable(args.output)
    record, painted = read_result(args.result)
    image = args.image
    if image is None:
        name = str((record["request"].get("image") or {}).get("name") or "")
        image = args.result.parent / Path(name).name
        if not name or not image.is_file():
            raise SettingsError(f"give the photo {name or 'the result was made from'} with --image")
    request = replay_request(
        record,
        image=image,
        painted=painted,
        reference_face=args.reference_face,
        identity_photos=[str(photo) for photo in args.identity or ()],
    )
    engine = Engine(model_spec(args), lora_dir=args.lora_dir)
    result = engine.run(request)
    save_result(result, args.output)
    same = load_image(args.result, name="result").tobytes() == result.image.tobytes()
    print(json.dumps({"output": str(args.output), "identical": same}))
    return 0
