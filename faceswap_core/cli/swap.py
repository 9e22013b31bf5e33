"""``swap``: replace the face in a photo, optionally trying several strengths and ranking them by identity."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceswap_core.cli.faces import landmarks_option, occlusion_option
from faceswap_core.cli.model_args import model_parent, model_spec
from faceswap_core.errors import SettingsError
from faceswap_core.people import People
from faceswap_core.requests import FACE_ALL, FACE_REFERENCE, MAX_REQUEST_CHARS, FaceRequest, SwapRequest
from faceswap_core.settings import (
    GUIDANCE,
    IDENTITY_SCALE,
    IDENTITY_SCALE_WITH_LORA,
    KEEP_EXPRESSION,
    LORA_SCALE,
    MAX_IDENTITY_PHOTOS,
    PADDING,
    STEPS,
    STRENGTH,
    MaskSettings,
    SwapSettings,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "swap",
        parents=[model_parent()],
        help="replace the faces in a photo (SDXL inpainting + optional LoRA per face)",
        description=(
            "Inpaint faces of TARGET at the model's native resolution and blend them back through their masks; "
            "pixels outside the masks stay exactly as they were. Several --face options repaint several faces, "
            "one after another, each with its own LoRA. With --strengths (one face), every strength is tried: "
            "OUT.png is the best and OUT-<rank>-s<strength>.png the candidates, ranked by identity distance "
            "to the --reference photos when given. The parameters are stored in the PNG text metadata."
        ),
    )
    parser.add_argument("target", type=Path, nargs="?", metavar="TARGET", help="photo whose face is replaced")
    parser.add_argument(
        "--request", type=Path, metavar="FILE.json", help="a swap written down as JSON (TARGET, if given, is its photo)"
    )
    parser.add_argument("--save-request", type=Path, metavar="FILE.json", help="also write the request as JSON")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png", help="where to write the result")
    add_request_options(parser)
    parser.add_argument(
        "--strengths", type=_float_list, metavar="S,S,...", help="try each strength, e.g. 0.3,0.4,0.5,0.6"
    )
    parser.add_argument(
        "--reference", type=Path, nargs="+", metavar="PHOTO", help="photos of the person: rank candidates by identity"
    )
    parser.set_defaults(func=run)


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a request (faces, people, mask, settings), shared by ``swap`` and ``batch``."""
    landmarks_option(parser)
    occlusion_option(parser)
    parser.add_argument(
        "--reference-face",
        type=Path,
        metavar="PHOTO",
        help="a photo of the person to find in TARGET: --face reference[:PERSON] repaints the face most like them",
    )
    parser.add_argument("--lora", metavar="NAME_OR_PATH", help="LoRA name in --lora-dir, or a .safetensors path")
    parser.add_argument(
        "--person",
        metavar="NAME",
        help="a person in --lora-dir (see the 'person' command): their photos through the image-prompt adapter "
        "and their LoRA when trained; --identity-scale sets the photos' weight (0: LoRA only)",
    )
    parser.add_argument(
        "--lora-scale", type=float, default=LORA_SCALE.default, metavar="F", help=_default("LoRA weight", LORA_SCALE)
    )
    parser.add_argument(
        "--mask",
        default="auto",
        metavar="auto|MASK.png",
        help="automatic face masks, or one mask image (white = replace) shared by the chosen faces, drawn on "
        "the photo as viewers show it (upright, with its EXIF rotation applied)",
    )
    parser.add_argument(
        "--face",
        dest="faces",
        action="append",
        type=face_spec,
        metavar="SPEC",
        help="a face to replace, repeatable: INDEX (0 = largest), all, or reference (the face most like "
        "--reference-face), each with an optional :PERSON (a person or a LoRA); a face without :PERSON uses --person "
        "or --lora (default: the largest face, or where --mask paints)",
    )
    parser.add_argument("--prompt", default=SwapSettings.prompt, metavar="TEXT", help="default: %(default)r")
    parser.add_argument("--negative-prompt", default=SwapSettings.negative_prompt, metavar="TEXT")
    parser.add_argument(
        "--strength", type=float, default=STRENGTH.default, metavar="S", help=_default("denoising strength", STRENGTH)
    )
    parser.add_argument(
        "--padding", type=float, default=PADDING.default, metavar="F", help=_default("context around the mask", PADDING)
    )
    parser.add_argument("--steps", type=int, default=int(STEPS.default), metavar="N", help=_default("steps", STEPS))
    parser.add_argument(
        "--guidance", type=float, default=GUIDANCE.default, metavar="G", help=_default("guidance scale", GUIDANCE)
    )
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default: random, stored in the PNG)")
    parser.add_argument("--no-color-match", action="store_true", help="keep the generated colours as they are")
    identity = parser.add_argument_group("photos of the person (image prompt, no training)")
    identity.add_argument(
        "--identity",
        type=Path,
        nargs="+",
        metavar="PHOTO",
        help=f"1-{MAX_IDENTITY_PHOTOS} photos of the person, used through the image-prompt adapter; they also "
        "rank --strengths unless --reference is given (a person's own photos come first)",
    )
    identity.add_argument(
        "--identity-scale",
        type=float,
        metavar="F",
        help=f"how strongly the photos steer the face, {IDENTITY_SCALE.minimum:g}-{IDENTITY_SCALE.maximum:g} "
        f"(default {IDENTITY_SCALE.default:g} alone, {IDENTITY_SCALE_WITH_LORA:g} beside --lora)",
    )
    fast = parser.add_argument_group("fast mode")
    fast.add_argument("--fast", action="store_true", help="a few-step LoRA and its scheduler: ~4 UNet evaluations")
    keep = parser.add_argument_group("pose and expression")
    keep_expression_option(keep)
    keep.add_argument(
        "--dynamic-strength", action="store_true", help="more strength for small faces (by face size, as ADetailer)"
    )


def face_spec(text: str) -> tuple[int | str, str | None]:
    """``INDEX``, ``all`` or ``reference``, each with an optional ``:PERSON`` -> (which face, person or None)."""
    which, _, lora = text.partition(":")
    which = which.strip().lower()
    if which in (FACE_ALL, FACE_REFERENCE):
        index: int | str = which
    elif which.isdigit():
        index = int(which)
    else:
        raise argparse.ArgumentTypeError(
            f"expected INDEX, all or reference, each with an optional :PERSON, got {text!r}"
        )
    if _ and not lora.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give a person or LoRA name after the colon")
    return index, lora.strip() or None


def keep_expression_option(parser: Any) -> None:
    """``--keep-expression [WEIGHT]``, shared by ``swap`` and ``video``: the ControlNet (``--controlnet``) on the
    target's landmarks at this weight; checked with the other settings (``SwapSettings.validate``)."""
    parser.add_argument(
        "--keep-expression",
        type=float,
        nargs="?",
        const=KEEP_EXPRESSION.default,
        default=0.0,
        metavar="WEIGHT",
        help="hold the target's pose and expression with a ControlNet on its landmarks, so --strength can go "
        f"to 0.8-1.0; {_default('WEIGHT', KEEP_EXPRESSION)}",
    )


def _default(what: str, allowed: Any) -> str:
    return f"{what}, {allowed.minimum:g}-{allowed.maximum:g} (default {allowed.default:g})"


def _float_list(text: str) -> list[float]:
    """``--strengths``: read as the app's Try strengths reads them (and as many), checked before any work."""
    from faceswap_core.sweep import parse_strengths

    if not text.replace(",", " ").strip():
        raise argparse.ArgumentTypeError("give at least one strength")
    try:
        return parse_strengths(text)
    except SettingsError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


SETTING_FLAGS = (  # flags named as SwapSettings' fields
    "prompt",
    "negative_prompt",
    "strength",
    "padding",
    "steps",
    "guidance",
    "seed",
    "lora",
    "lora_scale",
    "identity_scale",
    "fast",
    "keep_expression",
    "dynamic_strength",
)


def flag_settings(args: argparse.Namespace) -> SwapSettings:
    """The settings a command's flags give; ``video`` has fewer than ``swap``, the others keep their defaults."""
    if args.person and args.lora:
        raise SettingsError("--person brings its own LoRA; leave out --lora")
    flags = vars(args)
    values = {name: flags[name] for name in SETTING_FLAGS if name in flags}
    if "no_color_match" in flags:
        values["color_match"] = not flags["no_color_match"]
    if flags.get("identity"):
        values["identity_photos"] = tuple(str(photo) for photo in flags["identity"])
    return SwapSettings(**values)


def build_request(args: argparse.Namespace) -> SwapRequest:
    """The request the flags describe (``--request FILE`` gives one as JSON; TARGET then replaces its photo)."""
    if args.request is not None:
        files = {} if args.target is None else {"image": str(args.target)}
        return SwapRequest.from_json(read_request(args.request), files=files)
    if args.target is None:
        raise SettingsError("give the photo to change (TARGET), or a request with --request")
    settings = flag_settings(args)
    faces = tuple(FaceRequest(face=which, person=person) for which, person in args.faces or ())
    return SwapRequest(
        str(args.target),
        faces=faces,
        person=args.person,
        settings=settings,
        mask=None if args.mask == "auto" else str(args.mask),
        mask_settings=MaskSettings(occlusion=not args.no_occlusion),
        reference_face=None if args.reference_face is None else str(args.reference_face),
    ).validate()


def run(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.engine import Engine
    from faceswap_core.files import check_writable
    from faceswap_core.images import exif_orientation
    from faceswap_core.records import save_result
    from faceswap_core.sweep import sweep

    quiet_libraries()
    if args.output.suffix.lower() != ".png":
        raise SettingsError(f"{args.output}: the output must be a .png file (the parameters are stored in it)")
    check_writable(args.output)  # before minutes of work, not after
    request = build_request(args)
    if request.mask is not None and isinstance(request.image, str) and exif_orientation(request.image) != 1:
        print(
            f"note: {request.image} has EXIF orientation {exif_orientation(request.image)}; the mask is applied to "
            "the photo as viewers show it (upright), and so is the output",
            file=sys.stderr,
        )
    engine = Engine(model_spec(args), lora_dir=args.lora_dir, landmarks=args.backend)
    check_people(engine, request)  # a missing or unsafe LoRA fails here, before the model loads
    progress = _print_progress if sys.stderr.isatty() else None
    if args.save_request is not None:
        args.save_request.write_text(request.to_json())
    if not args.strengths and not args.reference:
        result = engine.run(request, progress=progress)
        save_result(result, args.output)
        print(json.dumps({"output": str(args.output), **result.record}))
        return 0
    prepared_faces = request.faces or ()
    if len(prepared_faces) > 1 or any(face.face == "all" for face in prepared_faces):
        raise SettingsError("--strengths and --reference try one face at a time; choose one --face")
    references = args.reference or list(_photos_of_request(engine, request)) or None
    results = sweep(engine, request, strengths=args.strengths, references=references, progress=progress)
    save_result(results[0], args.output)
    ranking = []
    for rank, result in enumerate(results):
        [face] = result.record["faces"]
        entry = {"rank": rank, "strength": face["strength"], "seed": face["seed"]}
        entry["identity_distance"] = result.identity_distance
        if args.strengths:  # candidates are kept so the user can pick another than the best
            path = args.output.with_name(f"{args.output.stem}-{rank}-s{face['strength']:g}.png")
            save_result(result, path)
            entry["file"] = str(path)
        ranking.append(entry)
    print(json.dumps({"output": str(args.output), "ranking": ranking}))
    return 0


def check_people(engine: Any, request: SwapRequest) -> None:
    people = People(engine.loras)
    for name in {request.person, *(face.person for face in request.faces)} - {None, ""}:
        people.resolve(str(name))
    if request.settings.lora:
        engine.loras.resolve(request.settings.lora)


def _photos_of_request(engine: Any, request: SwapRequest) -> tuple[str, ...]:
    """The photos that steer the request's face: its person's own, else the request's identity photos."""
    name = request.faces[0].person if request.faces and request.faces[0].person is not None else request.person
    if name:
        photos = People(engine.loras).resolve(name).photos
        if photos:
            return tuple(str(photo) for photo in photos)
    return request.settings.identity_photos


def read_request(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_REQUEST_CHARS + 1).decode("utf-8", errors="replace")
    except OSError as err:
        raise SettingsError(f"{path}: cannot read the request ({err.strerror or err})") from None


def _print_progress(step: int, total: int) -> None:
    print(f"\rstep {step}/{total}", end="\n" if step >= total else "", file=sys.stderr, flush=True)
