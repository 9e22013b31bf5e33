"""Face commands: ``faces`` (list the faces), ``mask`` (automatic face mask), ``prepare`` (LoRA training
crops), ``score`` (identity)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceswap_core.cli.model_args import add_face_parser_flag
from faceswap_core.settings import CLASS_WORDS, DEFAULT_CLASS_WORD, DEFAULT_FACE_BACKEND, FACE_BACKENDS, PREPARE_SIZE


def register(subparsers: Any) -> None:
    faces = subparsers.add_parser(
        "faces",
        help="list the faces in an image as JSON",
        description=(
            "Print JSON with every face found in IMAGE, largest first: its index (what --face takes), box "
            "[x0, y0, x1, y1], detector score, 68 landmarks [x, y] in iBUG-300W order and size (face width in "
            "pixels, what the mask's grow and feather scale with). An image without faces gives an empty list."
        ),
    )
    faces.add_argument("image", type=Path, metavar="IMAGE", help="photo to search")
    landmarks_option(faces)
    faces.set_defaults(func=run_faces)

    mask = subparsers.add_parser(
        "mask",
        help="write the automatic face mask of an image",
        description=(
            "Write an 8-bit grayscale PNG the size of IMAGE, white (255) over the face to replace: brows, eyes, "
            "nose, mouth, cheeks and jaw line, not hair or neck. Grow and feather scale with the face unless given."
        ),
    )
    mask.add_argument("image", type=Path, metavar="IMAGE", help="photo with the face")
    mask.add_argument("-o", "--output", type=Path, required=True, metavar="MASK.png", help="where to write the mask")
    mask.add_argument("--face", type=int, default=0, metavar="N", help="which face, 0 = largest (default 0)")
    mask.add_argument("--grow", type=float, metavar="PX", help="grow the mask by PX pixels, negative shrinks")
    mask.add_argument("--feather", type=float, metavar="PX", help="soften the edge over about PX pixels")
    landmarks_option(mask)
    occlusion_option(mask)
    add_face_parser_flag(mask)
    mask.set_defaults(func=run_mask)

    prepare = subparsers.add_parser(
        "prepare",
        help="crop and align photos of a person into a LoRA training set",
        description=(
            "Write a square crop of the largest face in each PHOTO (eyes level, same place and scale in every "
            "crop) plus metadata.csv (file_name,text) into DATASET_DIR. Photos without a face are skipped."
        ),
    )
    prepare.add_argument("photos", type=Path, nargs="+", metavar="PHOTO", help="photos of the person")
    prepare.add_argument("-o", "--output", type=Path, required=True, metavar="DATASET_DIR", help="output folder")
    prepare.add_argument(
        "--size",
        type=int,
        default=int(PREPARE_SIZE.default),
        help=f"crop side in pixels (default {PREPARE_SIZE.default:g})",
    )
    prepare.add_argument("--caption", metavar="TEXT", help="caption for every crop (default: the template caption)")
    prepare.add_argument(
        "--class-word",
        default=DEFAULT_CLASS_WORD,
        help=f"word for the person in the default caption: {', '.join(CLASS_WORDS)} (default {DEFAULT_CLASS_WORD})",
    )
    landmarks_option(prepare)
    prepare.set_defaults(func=run_prepare)

    score = subparsers.add_parser(
        "score",
        help="how much the face in an image looks like reference photos",
        description=(
            "Print JSON with the mean distance between the face in IMAGE and the faces in the reference photos "
            "(dlib's 128-D descriptor; lower is more alike, the same person is usually below 0.6)."
        ),
    )
    score.add_argument("image", type=Path, metavar="IMAGE", help="image with the face to score")
    score.add_argument("--reference", type=Path, nargs="+", required=True, metavar="PHOTO", help="photos of the person")
    score.add_argument("--face", type=int, default=0, metavar="N", help="which face in IMAGE, 0 = largest (default 0)")
    score.set_defaults(func=run_score)


def landmarks_option(parser: argparse.ArgumentParser) -> None:
    """``--landmarks`` (``--backend`` is its old name), shared by every command that finds faces."""
    parser.add_argument(
        "--landmarks",
        "--backend",
        dest="backend",
        choices=FACE_BACKENDS,
        default=DEFAULT_FACE_BACKEND,
        help=f"landmark backend (default {DEFAULT_FACE_BACKEND}, free for commercial use; dlib's 68-point model is "
        "non-commercial; face-alignment downloads its weights on first use)",
    )


def occlusion_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-occlusion",
        action="store_true",
        help="keep hands and objects in front of the face in the automatic mask (default: left out)",
    )


def run_faces(args: argparse.Namespace) -> int:
    from faceswap_core.faces.detect import detect_faces
    from faceswap_core.faces.masks import mask_scale
    from faceswap_core.images import load_image

    image = load_image(args.image, name=str(args.image))
    faces = detect_faces(image, backend=args.backend, name=str(args.image))
    result = {
        "image": str(args.image),
        "width": image.width,
        "height": image.height,
        "faces": [
            {
                "index": index,
                "box": [round(float(v), 2) for v in face.box],
                "score": round(float(face.score), 4),
                "size": round(mask_scale(face), 2),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
            }
            for index, face in enumerate(faces)
        ],
    }
    print(json.dumps(result))
    return 0


def run_mask(args: argparse.Namespace) -> int:
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.masks import face_mask
    from faceswap_core.faces.parser import load_parser
    from faceswap_core.images import load_image, save_png
    from faceswap_core.settings import MaskSettings

    MaskSettings(grow=args.grow, feather=args.feather).validate()
    image = load_image(args.image, name=str(args.image))
    face = find_face(image, args.face, backend=args.backend, name=str(args.image))
    photo = None if args.no_occlusion else image
    parser = None if photo is None or args.face_parser is None else load_parser(args.face_parser)
    mask = face_mask(image.size, face, grow=args.grow, feather=args.feather, image=photo, parser=parser)
    metadata = {"source": args.image.name, "face": str(args.face), "grow": str(args.grow), "feather": str(args.feather)}
    if parser is not None:
        metadata["face_parser"] = parser.source
    print(save_png(mask, args.output, metadata))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from faceswap_core.prepare import prepare_dataset

    def report(name: str, path: Path | None, reason: str | None) -> None:
        if path is not None:
            print(f"{name} -> {path}")
        else:
            print(f"skipped: {reason}", file=sys.stderr)

    result = prepare_dataset(
        args.photos,
        args.output,
        size=args.size,
        caption=args.caption,
        class_word=args.class_word,
        backend=args.backend,
        on_photo=report,
    )
    print(f"{len(result.written)} of {len(args.photos)} photos prepared in {args.output}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.identity import IdentityScorer
    from faceswap_core.images import load_image

    scorer = IdentityScorer(args.reference)
    image = load_image(args.image, name=str(args.image))
    face = find_face(image, args.face, name=str(args.image))
    result = {
        "image": str(args.image),
        "face": args.face,
        "distance": round(scorer.distance(image, face), 4),
        "references": len(scorer.descriptors),
        "skipped_references": [name for name, _ in scorer.skipped],
    }
    print(json.dumps(result))
    return 0
