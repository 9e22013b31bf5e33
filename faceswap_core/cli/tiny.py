"""``tiny-model``: write the tiny random SDXL inpainting pipeline used by tests, CI and smoke checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random SDXL inpainting model (for tests and smoke checks)",
        description=(
            "Write a randomly initialised SDXL inpainting pipeline with tiny dimensions via save_pretrained, "
            "with OUT_DIR/ip-adapter (an IP-Adapter plus-face and image encoder in the h94 layout, for --ip-adapter) "
            "and OUT_DIR/fast-lora (a few-step LoRA, for --fast-lora). Its output is noise; it lets tests and CI "
            "run the real loading and inference code on CPU."
        ),
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write the model into")
    parser.add_argument(
        "--inpaint-unet", action="store_true", help="9-channel inpainting UNet (like the SDXL inpainting-0.1 model)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceswap_core.cli import quiet_libraries
    from faceswap_core.fast import save_tiny_fast_lora
    from faceswap_core.identity_adapter import save_tiny_ip_adapter
    from faceswap_core.models import save_tiny_model

    quiet_libraries()
    out = save_tiny_model(args.out_dir, inpaint_unet=args.inpaint_unet, seed=args.seed)
    save_tiny_ip_adapter(out / "ip-adapter", seed=args.seed)
    save_tiny_fast_lora(out / "fast-lora", out, seed=args.seed + 1)
    print(out)
    return 0
