"""Extra time per swap that image-prompt identity (IP-Adapter plus-face) costs over the same call without it.

Every variant is one inpainting call with the same crop, mask, steps and seed; the embeddings are
cached (as for every swap after a person's first), so what is timed is the per-step cost of the
adapter's extra cross-attention and resampler: "no adapter" is a pipeline that never loaded it;
"loaded, scale 0" is what a request without photos pays once someone used photos; then 1 and N photos,
their tokens concatenated or averaged. The one-time costs (loading, detecting and encoding a set of
photos, a cached lookup) are printed separately. Runs alternate and the best times are compared, as
in engine_overhead.py.

    python bench/identity_adapter.py [--quick] [--steps 20] [--photos 4] [--repeats 7]   # tiny model, CPU
    python bench/identity_adapter.py --full [--steps 30] [--photos 4] [--repeats 3]      # full size, CUDA GPU

--full builds SDXL with random fp16 weights (the library's build_sdxl_pipeline) and a random adapter
and encoder of the real sizes (ViT-H-14, plus-face resampler), written to a temporary folder and
loaded through the same code as the real files; without a CUDA GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# laion/CLIP-ViT-H-14-laion2B-s32B-b79K vision tower, as in h94/IP-Adapter models/image_encoder/config.json
VIT_H = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "projection_dim": 1024,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-05,
}


def reference_photos(count: int) -> list[Any]:
    """``count`` different photos of one real face: the astronaut, mirrored and slightly turned."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    variants = [photo, photo.transpose(Image.FLIP_LEFT_RIGHT)]
    angle = 0
    while len(variants) < count:
        angle += 4
        variants += [photo.rotate(angle, resample=Image.BICUBIC), photo.rotate(-angle, resample=Image.BICUBIC)]
    return variants[:count]


def time_rounds(runs: dict[str, Callable[[], None]], repeats: int, sync: Callable[[], None]) -> dict[str, list[float]]:
    for run in runs.values():  # warm-up
        run()
    sync()
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            sync()
            timings[name].append(time.perf_counter() - started)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps and repeats: checks it runs (CI)")
    parser.add_argument("--full", action="store_true", help="full-size SDXL and ViT-H with random weights (GPU)")
    parser.add_argument("--steps", type=int, default=None, help="default 20 (tiny) or 30 (full)")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--photos", type=int, default=4, help="photos in the set (at most 8)")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (tiny) or 3 (full)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy box)")
    args = parser.parse_args()
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")

    import torch
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image
    from skimage import data

    from faceswap_core.blend import crop_square, square_crop_box
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.masks import face_mask, mask_box
    from faceswap_core.identity_adapter import IdentityAdapter, default_identity_scale
    from faceswap_core.models import load_inpaint_pipeline, native_resolution, save_tiny_model
    from faceswap_core.settings import ModelSpec

    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    steps = args.steps or (30 if args.full else 2 if args.quick else 20)
    repeats = args.repeats or (3 if args.full else 1 if args.quick else 7)
    photo_count = min(args.photos, 2) if args.quick else args.photos
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)

    if args.full:
        if not torch.cuda.is_available():
            print("identity_adapter --full: no CUDA GPU visible; this benchmark needs one (nothing was measured)")
            return 0
        from faceswap_core.identity_adapter import save_random_ip_adapter
        from faceswap_core.models import build_sdxl_pipeline

        device = torch.device("cuda")
        started = time.perf_counter()
        plain = build_sdxl_pipeline(vocab_dir=folder / "vocab", device=device, dtype=torch.float16)
        save_random_ip_adapter(
            folder / "ip-adapter", plain.unet, VIT_H, hidden_dims=1280, heads=20, dtype=torch.float16
        )
        with_adapter = plain  # one full-size SDXL only: the baseline is timed before the adapter is loaded
        label = f"random SDXL + ViT-H (fp16, {torch.cuda.get_device_name(device)})"
        print(f"built random SDXL and a random plus-face adapter in {time.perf_counter() - started:.1f} s")

        def sync() -> None:
            torch.cuda.synchronize()

    else:
        from faceswap_core.identity_adapter import save_tiny_ip_adapter

        model = save_tiny_model(folder / "tiny")
        save_tiny_ip_adapter(folder / "ip-adapter")
        plain = load_inpaint_pipeline(ModelSpec(str(model), device="cpu"))
        with_adapter = load_inpaint_pipeline(ModelSpec(str(model), device="cpu"))
        label = "tiny model, CPU"

        def sync() -> None:
            return None

    size = native_resolution(plain)
    target = Image.fromarray(data.astronaut())
    mask = face_mask(target.size, find_face(target))
    box = square_crop_box(mask_box(mask), 0.6, target.size)
    crop = crop_square(target, box).resize((size, size), Image.LANCZOS)
    crop_mask = crop_square(mask, box, fill_mode="constant").resize((size, size), Image.BILINEAR)

    def inpaint(pipeline: Any, extra: dict[str, Any]) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                pipeline(
                    prompt="a photo of a face",
                    negative_prompt="blurry",
                    image=crop,
                    mask_image=crop_mask,
                    height=size,
                    width=size,
                    strength=args.strength,
                    num_inference_steps=steps,
                    guidance_scale=args.guidance,
                    generator=torch.Generator("cpu").manual_seed(0),
                    **extra,
                )

        return run

    runs: dict[str, Callable[[], None]] = {"no adapter": inpaint(plain, {})}
    baseline: dict[str, list[float]] = {}
    if with_adapter is plain:
        baseline = time_rounds(runs, repeats, sync)
        runs = {}

    photos = reference_photos(photo_count)
    adapter = IdentityAdapter(str(folder / "ip-adapter"))
    mean_adapter = IdentityAdapter(str(folder / "ip-adapter"), combine="mean")
    started = time.perf_counter()
    adapter.load(with_adapter)
    sync()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    refs = adapter.references(photos)
    detect_s = time.perf_counter() - started
    started = time.perf_counter()
    embeds = adapter.embeds(with_adapter, refs)
    sync()
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    adapter.embeds(with_adapter, adapter.references(photos))
    cached_s = time.perf_counter() - started
    one = adapter.embeds(with_adapter, adapter.references(photos[:1]))
    averaged = mean_adapter.embeds(with_adapter, mean_adapter.references(photos))
    scale = default_identity_scale(False)

    def conditioned(identity: Any, combine: IdentityAdapter = adapter) -> Callable[[], None]:
        def run() -> None:
            inpaint(with_adapter, combine.call_kwargs(with_adapter, identity, scale=scale, guidance=args.guidance))()

        return run

    runs["loaded, scale 0"] = conditioned(None)
    runs["1 photo"] = conditioned(one)
    runs[f"{photo_count} photos, concat"] = conditioned(embeds)
    runs[f"{photo_count} photos, mean"] = conditioned(averaged, mean_adapter)
    timings = {**baseline, **time_rounds(runs, repeats, sync)}
    scratch.cleanup()

    base = min(timings["no adapter"])
    paired = with_adapter is not plain  # the baseline ran in the same rounds: per-round ratios are fair
    print(f"{label}, {size}px crop, {steps} steps, strength {args.strength:g}, guidance {args.guidance:g}")
    print(f"  one-time: adapter load {load_s:.2f} s; {photo_count} photos: detect+align {detect_s:.2f} s, ", end="")
    print(f"encode {encode_s * 1000:.1f} ms; cached set {cached_s * 1000:.1f} ms (hash + lookup)")
    for name, values in timings.items():
        best = min(values)
        line = f"  {name:20s} best {best * 1000:9.1f} ms   median {statistics.median(values) * 1000:9.1f} ms   "
        line += f"ratio {best / base:.3f} best"
        if paired:
            rounds = zip(values, timings["no adapter"], strict=True)
            line += f", {statistics.median(v / b for v, b in rounds):.3f} median of paired rounds"
        print(line)
    concat = min(timings[f"{photo_count} photos, concat"])
    print(f"adapter/no-adapter time ratio ({photo_count} photos, concat, best-of-{repeats}): {concat / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
