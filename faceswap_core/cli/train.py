"""``train``: train a LoRA of a person from a prepared dataset or raw photos, with a tqdm progress bar."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from faceswap_core.cli.model_args import model_parent, model_spec
from faceswap_core.settings import (
    CLASS_WORDS,
    DEFAULT_CLASS_WORD,
    DEFAULT_VQA_MODEL,
    SAMPLE_STEPS,
    TRAIN_BATCH,
    TRAIN_CHECKPOINT_EVERY,
    TRAIN_LR,
    TRAIN_RANK,
    TRAIN_RESOLUTION,
    TRAIN_STEPS,
    TrainSettings,
)

INTERRUPTED = 130


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        parents=[model_parent(inference=False)],
        help="train a LoRA of a person on 5-20 photos (SDXL, peft)",
        description=(
            "Train a LoRA on the UNet attention layers from a dataset folder written by 'prepare' (images + "
            "metadata.csv) or from raw photos (prepared first into NAME/dataset). Writes "
            "LORA_DIR/NAME/pytorch_lora_weights.safetensors, training.json, checkpoint-STEP/ folders and "
            "samples/step-STEP.png. An existing NAME is never overwritten: continue it with --resume."
        ),
    )
    parser.add_argument(
        "data",
        type=Path,
        nargs="*",
        metavar="DATASET_OR_PHOTOS",
        help="prepared dataset folder, photos or a folder; none to train a person added with 'person add NAME' "
        "(or to resume) on their own photos",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="NAME_OR_DIR",
        help="LoRA name (a folder in --lora-dir), or a folder path (anything with a slash)",
    )
    number = {"type": int, "metavar": "N"}
    parser.add_argument("--steps", default=TrainSettings.steps, **number, help=_help("training steps", TRAIN_STEPS))
    parser.add_argument(
        "--rank", type=int, default=TrainSettings.rank, metavar="R", help=_help("LoRA rank", TRAIN_RANK)
    )
    parser.add_argument("--alpha", type=float, metavar="A", help="LoRA alpha (default: equal to the rank)")
    parser.add_argument(
        "--lr", type=float, default=TrainSettings.learning_rate, metavar="LR", help=_help("learning rate", TRAIN_LR)
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=TrainSettings.resolution,
        metavar="PX",
        help=_help("square training size", TRAIN_RESOLUTION),
    )
    parser.add_argument("--batch", default=TrainSettings.batch_size, **number, help=_help("batch size", TRAIN_BATCH))
    parser.add_argument(
        "--checkpoint-every",
        default=TrainSettings.checkpoint_every,
        **number,
        help=_help("steps between checkpoints", TRAIN_CHECKPOINT_EVERY),
    )
    parser.add_argument("--seed", default=TrainSettings.seed, **number, help="seed of batches, noise and samples")
    parser.add_argument("--resume", action="store_true", help="continue NAME from its last checkpoint")
    parser.add_argument(
        "--class-word",
        default=DEFAULT_CLASS_WORD,
        metavar="WORD",
        help=f"who the photos show, used in captions ({', '.join(CLASS_WORDS)}; default {DEFAULT_CLASS_WORD})",
    )
    parser.add_argument(
        "--vqa",
        nargs="?",
        const=DEFAULT_VQA_MODEL,
        metavar="MODEL",
        help=f"caption raw photos with a VQA model (default model {DEFAULT_VQA_MODEL}; downloads on first use)",
    )
    parser.add_argument("--no-flip", action="store_true", help="do not add mirrored copies of the photos")
    parser.add_argument(
        "--train-text-encoder", action="store_true", help="also train LoRAs on both text encoders (more VRAM)"
    )
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less VRAM for ~20%% more time per step")
    parser.add_argument("--no-8bit-adam", action="store_true", help="use torch AdamW even when bitsandbytes is there")
    parser.add_argument("--no-samples", action="store_true", help="no sample image at each checkpoint")
    parser.add_argument("--sample-prompt", default="", metavar="TEXT", help="prompt of the samples (default: caption)")
    parser.add_argument(
        "--sample-target",
        metavar="PHOTO",
        help="also inpaint the face of PHOTO at each checkpoint (samples/*-target.png)",
    )
    parser.add_argument(
        "--sample-steps",
        default=TrainSettings.sample_steps,
        **number,
        help=_help("sample denoising steps", SAMPLE_STEPS),
    )
    parser.set_defaults(func=run)


def _help(what: str, limits: Any) -> str:
    return f"{what} ({limits.minimum:g}-{limits.maximum:g}, default %(default)s)"


def output_target(value: str) -> str | Path:
    """A plain word is a LoRA name; anything with a path separator (or absolute) is a folder."""
    if "/" in value or os.sep in value or os.path.isabs(value):
        return Path(value)
    return value


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.training import TrainProgress, train_lora

    quiet_libraries()
    settings = TrainSettings(
        steps=args.steps,
        rank=args.rank,
        alpha=args.alpha,
        learning_rate=args.lr,
        resolution=args.resolution,
        batch_size=args.batch,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        flip=not args.no_flip,
        train_text_encoder=args.train_text_encoder,
        gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=not args.no_8bit_adam,
        sample_every_checkpoint=not args.no_samples,
        sample_prompt=args.sample_prompt,
        sample_target=args.sample_target,
        sample_steps=args.sample_steps,
        class_word=args.class_word,
        vqa_model=args.vqa,
    )
    bars: dict[str, Any] = {}

    def show(update: TrainProgress) -> None:
        if update.stage not in ("caching", "training"):
            return
        for stage, finished in bars.items():
            if stage != update.stage:
                finished.close()  # caching is over once training reports
        bar = bars.get(update.stage)
        if bar is None:
            unit = "image" if update.stage == "caching" else "step"
            bar = bars[update.stage] = tqdm(
                total=update.total, initial=0, desc=update.stage, unit=unit, file=sys.stderr
            )
            if update.stage == "training":
                bar.n = update.step - 1  # a resumed run starts at its checkpoint's step
        bar.update(update.step - bar.n)
        if update.loss is not None:
            bar.set_postfix(loss=f"{update.loss:.4f}", refresh=False)

    cancel = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:
        """First Ctrl-C: stop after this step and keep a checkpoint; a second one aborts at once."""
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nstopping after this step (Ctrl-C again to abort without a checkpoint)", file=sys.stderr)

    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can signals be caught
    previous_handler = signal.signal(signal.SIGINT, interrupt) if in_main_thread else None
    model = model_spec(args)
    data = None if not args.data else args.data[0] if len(args.data) == 1 else args.data
    try:
        result = train_lora(
            data,
            output_target(args.output),
            base_model=model.base,
            settings=settings,
            lora_dir=args.lora_dir,
            resume=args.resume,
            progress=show,
            cancel=cancel,
            device=model.device,
            base_config=model.base_config,
        )
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        for bar in bars.values():
            bar.close()
    if result.cancelled:
        where = result.checkpoints[-1] if result.checkpoints else result.output_dir
        print(f"cancelled at step {result.steps_done}; kept {where}; continue with --resume", file=sys.stderr)
        return INTERRUPTED
    print(result.final_weights)
    return 0
