"""``swap``: replace the face in a photo, optionally trying several strengths and ranking them by identity."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from faceswap_core.errors import SettingsError
from faceswap_core.settings import (
    DEFAULT_BASE_MODEL,
    DEVICES,
    GUIDANCE,
    LORA_SCALE,
    MAX_STRENGTH_CANDIDATES,
    PADDING,
    STEPS,
    STRENGTH,
    SwapSettings,
)

LORA_DIR_ENV = "FACESWAP_LORA_DIR"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "swap",
        help="replace the face in a photo (SDXL inpainting + optional LoRA)",
        description=(
            "Inpaint the face of TARGET at the model's native resolution and blend it back through the mask; "
            "pixels outside the mask stay exactly as they were. With --strengths, every strength is tried: "
            "OUT.png is the best and OUT-<rank>-s<strength>.png the candidates, ranked by identity distance "
            "to the --reference photos when given. The parameters are stored in the PNG text metadata."
        ),
    )
    parser.add_argument("target", type=Path, metavar="TARGET", help="photo whose face is replaced")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png", help="where to write the result")
    parser.add_argument(
        "--base",
        default=DEFAULT_BASE_MODEL,
        metavar="MODEL",
        help=f"hub id, diffusers folder or single .safetensors SDXL checkpoint (default {DEFAULT_BASE_MODEL})",
    )
    parser.add_argument(
        "--config",
        metavar="DIR",
        help="diffusers folder with the configs for a single-file --base, for offline use",
    )
    parser.add_argument("--vae", metavar="VAE", help="VAE override, e.g. madebyollin/sdxl-vae-fp16-fix for fp16")
    parser.add_argument("--lora", metavar="NAME_OR_PATH", help="LoRA name in --lora-dir, or a .safetensors path")
    parser.add_argument(
        "--lora-scale", type=float, default=LORA_SCALE.default, metavar="F", help=_default("LoRA weight", LORA_SCALE)
    )
    parser.add_argument(
        "--lora-dir",
        type=Path,
        default=Path(os.environ.get(LORA_DIR_ENV, "lora_weights")),
        metavar="DIR",
        help=f"folder of LoRAs (default ${LORA_DIR_ENV} or lora_weights)",
    )
    parser.add_argument(
        "--mask",
        default="auto",
        metavar="auto|MASK.png",
        help="automatic face mask, or a mask image (white = replace) drawn on the photo as viewers show it "
        "(upright, with its EXIF rotation applied)",
    )
    parser.add_argument("--face", type=int, default=0, metavar="N", help="which face, 0 = largest (default 0)")
    parser.add_argument("--prompt", default=SwapSettings.prompt, metavar="TEXT", help="default: %(default)r")
    parser.add_argument("--negative-prompt", default=SwapSettings.negative_prompt, metavar="TEXT")
    parser.add_argument(
        "--strength", type=float, default=STRENGTH.default, metavar="S", help=_default("denoising strength", STRENGTH)
    )
    parser.add_argument(
        "--strengths", type=_float_list, metavar="S,S,...", help="try each strength, e.g. 0.3,0.4,0.5,0.6"
    )
    parser.add_argument(
        "--reference", type=Path, nargs="+", metavar="PHOTO", help="photos of the person: rank candidates by identity"
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
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: auto (cuda, mps, then cpu)")
    parser.add_argument("--low-vram", action="store_true", help="offload sub-models to the CPU (8-12 GB GPUs)")
    parser.set_defaults(func=run)


def _default(what: str, allowed: Any) -> str:
    return f"{what}, {allowed.minimum:g}-{allowed.maximum:g} (default {allowed.default:g})"


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one strength")
    return values


def run(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.engine import Engine
    from faceswap_core.files import check_writable
    from faceswap_core.images import exif_orientation, save_png

    quiet_libraries()
    if args.output.suffix.lower() != ".png":
        raise SettingsError(f"{args.output}: the output must be a .png file (the parameters are stored in it)")
    check_writable(args.output)  # before minutes of work, not after
    if args.strengths and len(args.strengths) > MAX_STRENGTH_CANDIDATES:
        raise SettingsError(f"--strengths: {len(args.strengths)} given; try at most {MAX_STRENGTH_CANDIDATES} at once")
    settings = SwapSettings(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        strength=args.strength,
        padding=args.padding,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        lora=args.lora,
        lora_scale=args.lora_scale,
        face_index=args.face,
        color_match=not args.no_color_match,
    )
    settings.validate()
    mask = None if args.mask == "auto" else Path(args.mask)
    orientation = exif_orientation(args.target)
    if mask is not None and orientation != 1:
        print(
            f"note: {args.target} has EXIF orientation {orientation}; the mask is applied to the photo as viewers "
            "show it (upright), and so is the output",
            file=sys.stderr,
        )
    engine = Engine(
        args.base,
        device=args.device,
        vae=args.vae,
        low_vram=args.low_vram,
        lora_dir=str(args.lora_dir),
        base_config=args.config,
    )
    if args.lora:
        engine.loras.resolve(args.lora)  # a missing or unsafe LoRA fails before the model loads
    progress = _print_progress if sys.stderr.isatty() else None
    if not args.strengths and not args.reference:
        result = engine.swap(args.target, mask=mask, settings=settings, progress=progress)
        save_png(result.image, args.output, {"parameters": json.dumps(result.record)})
        print(json.dumps({"output": str(args.output), **result.record}))
        return 0
    results = engine.search(
        args.target,
        mask=mask,
        settings=settings,
        strengths=args.strengths or [settings.strength],
        references=args.reference,
        progress=progress,
    )
    save_png(results[0].image, args.output, {"parameters": json.dumps(results[0].record)})
    ranking = []
    for rank, result in enumerate(results):
        strength = result.record["settings"]["strength"]
        entry = {"rank": rank, "strength": strength, "seed": result.record["seed"]}
        entry["identity_distance"] = result.identity_distance
        if args.strengths:  # candidates are kept so the user can pick another than the best
            path = args.output.with_name(f"{args.output.stem}-{rank}-s{strength:g}.png")
            save_png(result.image, path, {"parameters": json.dumps(result.record)})
            entry["file"] = str(path)
        ranking.append(entry)
    print(json.dumps({"output": str(args.output), "ranking": ranking}))
    return 0


def _print_progress(step: int, total: int) -> None:
    print(f"\rstep {step}/{total}", end="\n" if step >= total else "", file=sys.stderr, flush=True)
