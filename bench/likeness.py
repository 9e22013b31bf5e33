"""Keep expression and checkpoint ranking against a plain swap: what each costs, measured in the same run.

The tiny model on CPU (its output is noise: this measures cost, not quality) with a tiny random
ControlNet and a tiny random union ControlNet (xinsir's kind), each on its own engine. A plain swap
(30 steps at strength 0.9; 8 with --quick) and the same request with Keep expression go through
``Engine.swap`` on each engine, alternating; the best (minimum) times are compared, as timeit does.
Then a person trained for a few steps (two checkpoints) is ranked: its samples are sweeps
(``sweep.sweep``, the loop Try strengths runs) over checkpoints x prompts, and the ranking's time is
given in plain swaps and per sample.

    python bench/likeness.py [--repeats 5] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # steadiest on a busy box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 8-step swaps, 2-step samples: for CI")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats

    import numpy as np
    from PIL import Image
    from skimage import data

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.conditioning.controlnet import save_tiny_controlnet
    from faceswap_core.engine import Engine
    from faceswap_core.models import save_tiny_model
    from faceswap_core.settings import ModelSpec, SwapSettings, TrainSettings
    from faceswap_core.training import train_lora
    from faceswap_core.training.ranking import (
        RANK_STEPS,
        RANK_VARIATIONS,
        dlib_describe,
        rank_checkpoints,
        sweep_render,
    )

    quiet_libraries()
    photo = Image.fromarray(data.astronaut())
    plain = SwapSettings(steps=8 if args.quick else 30, strength=0.9, guidance=7.0, seed=1)
    keep = replace(plain, keep_expression=0.6)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_model(root / "tiny")
        controlnet = save_tiny_controlnet(root / "controlnet", model)
        union = save_tiny_controlnet(root / "union", model, union=True)
        spec = ModelSpec(str(model), device=args.device, controlnet=str(controlnet))
        engine = Engine(spec, lora_dir=root / "people")
        union_engine = Engine(replace(spec, controlnet=str(union)), lora_dir=root / "people")
        # each ControlNet against a plain swap on its own engine: two engines in one process do not run alike
        runs = (
            ("plain", engine, plain),
            ("keep", engine, keep),
            ("union plain", union_engine, plain),
            ("union keep", union_engine, keep),
        )
        for _, runner, settings in runs:  # warm-up: model load, detector, the ControlNets' load, first calls
            runner.swap(photo, settings=settings)
        times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for _ in range(repeats):
            for name, runner, settings in runs:
                started = time.perf_counter()
                runner.swap(photo, settings=settings)
                times[name].append(time.perf_counter() - started)
        best = {name: min(values) for name, values in times.items()}
        for name, _, _ in runs:
            print(f"{name + ' swap':<24} best {best[name] * 1000:8.1f} ms")
        print(f"ratio keep-expression/plain swap wall time {best['keep'] / best['plain']:.3f}")
        print(f"ratio keep-expression-union/plain swap wall time {best['union keep'] / best['union plain']:.3f}")

        dataset = root / "dataset"
        dataset.mkdir()
        photo.crop((110, 0, 350, 240)).resize((160, 160)).save(dataset / "a.png")
        (dataset / "metadata.csv").write_text('file_name,text\na.png,"a photo of a woman face"\n')
        training = TrainSettings(
            steps=4, rank=4, resolution=64, checkpoint_every=2, sample_every_checkpoint=False, learning_rate=1e-2
        )
        train_lora(dataset, "anna", base_model=str(model), settings=training, lora_dir=root / "people")
        steps = 2 if args.quick else RANK_STEPS
        rendered: list[int] = []
        through_sweep = sweep_render(engine, steps)

        def counted(loras: list[str], prompts: list[str], *rest: object) -> list[Image.Image]:
            rendered.append(len(loras) * len(prompts))
            return through_sweep(loras, prompts, *rest)

        def described(image: Image.Image) -> np.ndarray:
            """dlib looks for a face as in a real ranking; the tiny model draws none, so one is assumed and
            every sample is rendered (a real ranking's cost, not the probe's early stop)."""
            found = dlib_describe(image)
            return np.zeros(128) if found is None else found

        started = time.perf_counter()
        ranking = rank_checkpoints(engine, "anna", steps=steps, render=counted, describe=described, reuse=False)
        ranked_s = time.perf_counter() - started
        samples, sweeps = sum(rendered), len(rendered)
        possible = len(ranking.checkpoints) * len(RANK_VARIATIONS)
        print(
            f"rank {len(ranking.checkpoints)} checkpoints through {sweeps} sweeps: {samples} of {possible} samples "
            f"of {steps} steps, each described by dlib  {ranked_s:.2f} s"
        )
        print(f"ratio rank-checkpoints/plain swap wall time {ranked_s / best['plain']:.3f}")
        print(f"ratio rank-per-sample/plain swap wall time {ranked_s / samples / best['plain']:.3f}")


if __name__ == "__main__":
    main()
