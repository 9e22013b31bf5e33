"""Seconds per LoRA training step and peak memory: this trainer vs the diffusers example script's per-step work.

The example script (``train_text_to_image_lora_sdxl.py``) runs the VAE encoder and both text encoders
on every step, and keeps them on the GPU; the trainer encodes the fixed dataset once and trains the
UNet alone. Both variants run the same UNet + LoRA + optimizer step, each in a fresh subprocess so
that peak memory (peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) is its own.

    python bench/train_step.py                 # tiny random model, CPU or GPU
    python bench/train_step.py --full          # full-size SDXL (random weights), 1024 px, CUDA only
    python bench/train_step.py --quick         # CI smoke run: 2 images, 2 steps (numbers are not meaningful)

The trainer's variant is the trainer's own code: ``_Run`` (loading, or ``adopt`` for the in-memory
full-size SDXL of ``build_sdxl_pipeline``), ``encode_dataset``, ``setup_lora_training`` and
``_train_step``, so the benchmark cannot drift from what it measures.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_memory(device: Any) -> float:
    """Peak MiB: CUDA allocations on a GPU, the process's peak RSS otherwise."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(
    variant: str, base: str | None, resolution: int, steps: int, warmup: int, images: int, gradient_checkpointing: bool
) -> dict[str, Any]:
    """Set up one variant (or both) as the trainer does, then time ``steps`` steps of each.

    ``base`` None is full-size SDXL with random weights (``--full``), at the trainer's default LoRA rank.
    """
    import torch
    from diffusers import DDPMScheduler
    from PIL import Image

    from faceswap_core.images import to_array
    from faceswap_core.models import build_sdxl_pipeline, pick_device
    from faceswap_core.settings import TRAIN_RANK, TrainSettings
    from faceswap_core.training.dataset import DatasetItem, encode_dataset, encode_text, tokenize
    from faceswap_core.training.trainer import _Run, _train_step, setup_lora_training

    device = pick_device("auto")
    if device.type == "cpu":
        # The tiny random model drives x86 into denormal slow paths (20x slower steps, varying from run to
        # run): flushing them measures the work, not the CPU's denormal handling. Same for both variants.
        torch.set_flush_denormal(True)
    rank = int(TRAIN_RANK.default) if base is None else 4
    settings = TrainSettings(
        resolution=resolution, rank=rank, sample_every_checkpoint=False, gradient_checkpointing=gradient_checkpointing
    )
    scratch = Path(tempfile.mkdtemp())
    run = _Run(scratch, base or "random full-size SDXL", settings, device, None)
    if base is None:
        # Made on the GPU (fast), then left on the CPU as _Run.load leaves a loaded model.
        built = build_sdxl_pipeline(vocab_dir=scratch / "vocab", device=device, dtype=run.precision.weight_dtype)
        pipeline = run.adopt(built.to("cpu"))
    else:
        pipeline = run.load()
    folder = Path(tempfile.mkdtemp())
    rng = torch.Generator().manual_seed(0)
    items = []
    for index in range(images):
        pixels = torch.randint(0, 256, (resolution, resolution, 3), generator=rng, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{index}.png")
        items.append(DatasetItem(folder / f"{index}.png", f"a photo of a woman face, photo {index}"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cached = None
    if variant in ("trainer", "both"):
        cached = encode_dataset(
            pipeline,
            items,
            resolution=resolution,
            flip=True,
            device=device,
            text_dtype=run.precision.weight_dtype,
            encode_captions=True,
            seed=0,
        )
    if variant in ("example", "both"):  # the example script keeps every model on the device
        pipeline.vae.to(device)
        pipeline.text_encoder.to(device)
        pipeline.text_encoder_2.to(device)
    models = {"unet": pipeline.unet}
    trained, optimizer, scaler = setup_lora_training(models, settings, device, run.precision)
    unet, params = pipeline.unet, list(trained.values())
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    generator = torch.Generator().manual_seed(0)
    pictures = [
        torch.from_numpy(to_array(Image.open(item.image))).permute(2, 0, 1).float().div(127.5).sub(1.0)
        for item in items
    ]
    captions = [item.caption for item in items]
    time_ids = torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]], dtype=torch.float32)

    def example_step() -> None:
        """Per step, as the example script: VAE encode + text encode + the same UNet step."""
        index = int(torch.randint(0, len(items), (1,), generator=generator))
        with torch.no_grad():
            vae = pipeline.vae
            latents = vae.encode(pictures[index][None].to(device, vae.dtype)).latent_dist.sample()
            latents = (latents * vae.config.scaling_factor).float().cpu()
            ids = tokenize((pipeline.tokenizer, pipeline.tokenizer_2), [captions[index]])
            embeds, pooled = encode_text((pipeline.text_encoder, pipeline.text_encoder_2), ids)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        autocast = torch.autocast(device.type, dtype=run.precision.autocast, enabled=run.precision.autocast is not None)
        with autocast:
            prediction = unet(
                noisy.to(device),
                timesteps.to(device),
                encoder_hidden_states=embeds,
                added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids.to(device)},
                return_dict=False,
            )[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.to(device).float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def trainer_step() -> None:
        _train_step(pipeline, models, cached, scheduler, optimizer, scaler, generator, run, False)

    chosen = {"example": example_step, "trainer": trainer_step}
    if variant != "both":
        chosen = {variant: chosen[variant]}
    durations: dict[str, list[float]] = {name: [] for name in chosen}
    for index in range(warmup + steps):  # interleaved, so both variants see the same machine load
        for name, step in chosen.items():
            _sync(device)
            began = time.perf_counter()
            step()
            _sync(device)
            if index >= warmup:
                durations[name].append(time.perf_counter() - began)
    seconds = {name: statistics.median(values) for name, values in durations.items()}
    setup = (
        f"LoRA rank {settings.rank}, {run.precision.name}, {type(optimizer).__name__}, "
        f"gradient checkpointing {'on' if gradient_checkpointing else 'off'}, {_device_name(device)}"
    )
    return {"seconds_per_step": seconds, "peak_mib": _peak_memory(device), "setup": setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="model to use (default: a tiny random SDXL written to a temp folder)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--images", type=int, default=10, help="dataset size (encoded once by the trainer)")
    parser.add_argument("--full", action="store_true", help="full-size SDXL (random weights) at 1024 px, CUDA only")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (less memory)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke run: 2 images, 1 warm-up + 2 steps, no separate peak-memory processes",
    )
    parser.add_argument("--variant", choices=("trainer", "example", "both"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.images, args.warmup, args.steps = 2, 1, 2
    if args.full:
        if not _cuda():
            print("--full needs a CUDA GPU (the full SDXL UNet at 1024 px); none is visible, so nothing was measured.")
            return
        args.base, args.resolution = None, 1024
    if args.variant:
        timed = run_variant(
            args.variant, args.base, args.resolution, args.steps, args.warmup, args.images, args.gradient_checkpointing
        )
        print(json.dumps(timed))
        return
    with tempfile.TemporaryDirectory() as scratch:
        base = args.base
        if base is None and not args.full:
            from faceswap_core.models import save_tiny_model

            base = str(save_tiny_model(Path(scratch) / "tiny"))

        def child(variant: str, steps: int, warmup: int) -> dict[str, Any]:
            command = [sys.executable, __file__, "--variant", variant, "--images", str(args.images)]
            command += ["--resolution", str(args.resolution), "--steps", str(steps), "--warmup", str(warmup)]
            command += ["--full"] if base is None else ["--base", base]
            command += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"train_step: the {variant} run failed:\n{done.stderr}")
            return json.loads(done.stdout.strip().splitlines()[-1])

        both = child("both", args.steps, args.warmup)
        seconds = both["seconds_per_step"]
        # Each variant's peak needs a process of its own (~10 s of imports each), so --quick skips it.
        peaks = {} if args.quick else {variant: child(variant, 3, 0)["peak_mib"] for variant in ("example", "trainer")}
    model = "random full-size SDXL" if args.full else args.base or "tiny random SDXL"
    print(
        f"model {model}, {args.resolution} px, batch 1, {args.images} images, {both['setup']}, "
        f"median of {args.steps} interleaved steps; "
        + ("peak memory of each variant in its own process" if peaks else "peak memory not measured (--quick)")
    )
    for name, label in (("example", "diffusers example per-step work"), ("trainer", "this trainer (cached)")):
        peak = f"   peak {peaks[name]:8.1f} MiB" if peaks else ""
        print(f"  {label:34s} {seconds[name] * 1000:8.1f} ms/step{peak}")
    ratio = f"  ratio trainer/example: time {seconds['trainer'] / seconds['example']:.2f}"
    if peaks:
        memory = "CUDA max_memory_allocated" if _cuda() else "whole-process peak RSS"
        ratio += f", peak memory {peaks['trainer'] / peaks['example']:.2f} ({memory})"
    print(ratio)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _device_name(device: Any) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


if __name__ == "__main__":
    main()
