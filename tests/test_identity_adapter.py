"""Image-prompt identity on the tiny model: the real load call, photos -> embeddings, scale, LoRA, offload."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lora_factory import make_test_lora
from PIL import Image

from faceswap_core.errors import ModelLoadError, NoFaceError, SettingsError, UnsafeWeightsError
from faceswap_core.identity_adapter import (
    IdentityAdapter,
    _original_resampler_keys,
    default_identity_scale,
    save_tiny_ip_adapter,
)
from faceswap_core.settings import IP_ADAPTER_ENCODER, IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT

PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "people"
GUIDANCE = 7.0  # classifier-free guidance on: the embeddings go in as (negative, positive)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"))


@pytest.fixture(scope="module")
def people() -> dict[str, list[Path]]:
    found = {name: sorted(PEOPLE.glob(f"{name}*.jpg")) for name in ("obama", "biden")}
    if not all(found.values()):
        pytest.skip("shared photos of people not present")
    return found


@pytest.fixture(scope="module")
def target(astronaut: Image.Image) -> dict[str, Any]:
    """The astronaut's face crop at the tiny model's 64 px, with its mask, as the engine would cut it."""
    from faceswap_core.blend import crop_square, square_crop_box
    from faceswap_core.faces.detect import find_face
    from faceswap_core.faces.masks import face_mask, mask_box

    mask = face_mask(astronaut.size, find_face(astronaut))
    box = square_crop_box(mask_box(mask), 0.6, astronaut.size)
    crop = crop_square(astronaut, box).resize((64, 64), Image.LANCZOS)
    crop_mask = crop_square(mask, box, fill_mode="constant").resize((64, 64), Image.BILINEAR)
    return {"image": astronaut, "mask": mask, "box": box, "crop": crop, "crop_mask": crop_mask}


def _pipeline(model_dir: Path) -> Any:
    from faceswap_core.models import load_inpaint_pipeline
    from faceswap_core.settings import ModelSpec

    return load_inpaint_pipeline(ModelSpec(str(model_dir), device="cpu"))


def _inpaint(pipeline: Any, target: dict[str, Any], guidance: float = GUIDANCE, **extra: Any) -> np.ndarray:
    import torch

    with torch.inference_mode():
        output = pipeline(
            prompt="a photo of a face",
            negative_prompt="blurry",
            image=target["crop"],
            mask_image=target["crop_mask"],
            height=64,
            width=64,
            strength=0.75,
            num_inference_steps=4,
            guidance_scale=guidance,
            generator=torch.Generator("cpu").manual_seed(3),
            **extra,
        )
    return np.asarray(output.images[0])


def _identity(adapter: IdentityAdapter, pipeline: Any, photos: list[Any], scale: float = 0.7, **kw: Any) -> dict:
    embeds = adapter.embeds(pipeline, adapter.references(photos))
    return adapter.call_kwargs(pipeline, embeds, scale=scale, guidance=kw.get("guidance", GUIDANCE))


def _astronaut_photos(astronaut: Image.Image) -> list[Image.Image]:
    return [astronaut, astronaut.transpose(Image.FLIP_LEFT_RIGHT)]


def test_tiny_adapter_loads_through_the_real_call_in_the_h94_layout(tiny_model_dir: Path, adapter_dir: Path) -> None:
    from safetensors.torch import load_file

    pipeline = _pipeline(tiny_model_dir)
    pipeline.load_ip_adapter(
        str(adapter_dir),
        subfolder=IP_ADAPTER_SUBFOLDER,
        weight_name=IP_ADAPTER_WEIGHT,
        image_encoder_folder=IP_ADAPTER_ENCODER,
    )
    saved = load_file(str(adapter_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT))
    projection = pipeline.unet.encoder_hid_proj.image_projection_layers[0]
    assert type(projection).__name__ == "IPAdapterPlusImageProjection"
    loaded = _original_resampler_keys(projection.state_dict())
    original = {k.removeprefix("image_proj."): v for k, v in saved.items() if k.startswith("image_proj.")}
    assert loaded.keys() == original.keys()
    assert all(np.array_equal(loaded[k].numpy(), original[k].numpy()) for k in original)
    processors = [p for p in pipeline.unet.attn_processors.values() if hasattr(p, "to_k_ip")]
    assert len(processors) == sum(k.endswith("to_k_ip.weight") for k in saved)
    assert pipeline.image_encoder.config.image_size == 32  # the tiny encoder of models/image_encoder


def test_photos_steer_the_face_and_pixels_outside_the_mask_stay(
    tiny_model_dir: Path, adapter_dir: Path, people: dict[str, list[Path]], target: dict[str, Any]
) -> None:
    from faceswap_core.blend import paste_back

    pipeline = _pipeline(tiny_model_dir)
    base = _inpaint(pipeline, target)
    adapter = IdentityAdapter(str(adapter_dir))
    obama = _inpaint(pipeline, target, **_identity(adapter, pipeline, people["obama"]))
    biden = _inpaint(pipeline, target, **_identity(adapter, pipeline, people["biden"]))
    inside = np.asarray(target["crop_mask"]) > 127
    assert (obama[inside] != base[inside]).any() and (obama[inside] != biden[inside]).any()
    original = target["image"]
    outside = np.asarray(target["mask"]) == 0
    for generated in (obama, biden):
        result = paste_back(original, Image.fromarray(generated), target["mask"], target["box"])
        assert np.array_equal(np.asarray(result)[outside], np.asarray(original)[outside])


@pytest.mark.parametrize("guidance", [1.0, GUIDANCE])
def test_scale_zero_is_byte_identical_to_the_pipeline_without_adapter(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image, target: dict[str, Any], guidance: float
) -> None:
    without = _inpaint(_pipeline(tiny_model_dir), target, guidance)
    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir))
    assert adapter.call_kwargs(pipeline, None, scale=0.7, guidance=guidance) == {}  # LoRA-only users: no load
    assert not adapter.is_loaded(pipeline)
    photos = _astronaut_photos(astronaut)
    at_zero = _inpaint(pipeline, target, guidance, **_identity(adapter, pipeline, photos, 0.0, guidance=guidance))
    assert np.array_equal(at_zero, without)
    no_photos = adapter.call_kwargs(pipeline, None, scale=0.7, guidance=guidance)  # loaded: neutral, scale 0
    assert np.array_equal(_inpaint(pipeline, target, guidance, **no_photos), without)
    steered = _inpaint(pipeline, target, guidance, **_identity(adapter, pipeline, photos, 0.7, guidance=guidance))
    assert not np.array_equal(steered, without)


def test_adapter_combines_with_a_lora(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image, target: dict[str, Any], tmp_path: Path
) -> None:
    lora = make_test_lora(tiny_model_dir, tmp_path / "alice", seed=1)
    reference = _pipeline(tiny_model_dir)
    reference.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="alice")
    lora_only = _inpaint(reference, target)

    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir))
    photos = _astronaut_photos(astronaut)
    photos_only = _inpaint(pipeline, target, **_identity(adapter, pipeline, photos))
    pipeline.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="alice")
    pipeline.set_adapters(["alice"], adapter_weights=[1.0])
    neutral = adapter.call_kwargs(pipeline, None, scale=0.7, guidance=GUIDANCE)
    assert np.array_equal(_inpaint(pipeline, target, **neutral), lora_only)  # the adapter leaves the LoRA alone
    both = _inpaint(pipeline, target, **_identity(adapter, pipeline, photos, default_identity_scale(True)))
    assert not np.array_equal(both, lora_only) and not np.array_equal(both, photos_only)
    pipeline.set_adapters(["alice"], adapter_weights=[0.0])  # set_adapters still steers the LoRA beside it
    assert np.array_equal(_inpaint(pipeline, target, **_identity(adapter, pipeline, photos)), photos_only)
    assert default_identity_scale(True) < default_identity_scale(False)


def test_embeddings_are_computed_once_per_set_of_photos(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir))
    flipped = astronaut.transpose(Image.FLIP_LEFT_RIGHT)
    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    first = adapter.embeds(pipeline, adapter.references([path, flipped]))
    again_refs = adapter.references([flipped, path])  # the same set in another order
    assert all(ref.crop is None for ref in again_refs)  # cached: no detection or alignment again
    again = adapter.embeds(pipeline, again_refs)
    assert again is first and adapter.encode_count == 1
    assert first.positive.shape[:2] == (1, 2) and first.negative.shape == first.positive.shape
    other = adapter.embeds(pipeline, adapter.references([path]))
    assert adapter.encode_count == 2 and other.photo_hashes != first.photo_hashes
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() in first.photo_hashes  # what sha256sum prints
    record = adapter.record(first, 0.7)
    assert record["identity_photos"] == list(first.photo_hashes)
    assert record["identity_adapter"] == f"{adapter_dir}:{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}"
    assert record["identity_scale"] == 0.7 and record["identity_combine"] == "concat"


def test_a_set_evicted_between_references_and_embeds_is_encoded_again(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image
) -> None:
    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir), cache_size=1)
    first = adapter.embeds(pipeline, adapter.references([astronaut]))
    cached_refs = adapter.references([astronaut])
    assert cached_refs[0].crop is None
    adapter.embeds(pipeline, adapter.references([astronaut.transpose(Image.FLIP_LEFT_RIGHT)]))  # evicts the first
    again = adapter.embeds(pipeline, cached_refs)
    assert adapter.encode_count == 3 and np.array_equal(again.positive.numpy(), first.positive.numpy())


def test_mean_of_photos_gives_one_set_of_tokens_and_runs(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image, target: dict[str, Any]
) -> None:
    pipeline = _pipeline(tiny_model_dir)
    photos = _astronaut_photos(astronaut)
    concat = IdentityAdapter(str(adapter_dir))
    mean = IdentityAdapter(str(adapter_dir), combine="mean")
    both = concat.embeds(pipeline, concat.references(photos))
    averaged = mean.embeds(pipeline, mean.references(photos))
    assert both.positive.shape[1] == 2 and averaged.positive.shape[1] == 1
    assert np.allclose(averaged.positive[0, 0].numpy(), both.positive[0].mean(0).numpy(), atol=1e-6)
    assert [t.shape[0] for t in averaged.pipeline_embeds(GUIDANCE)] == [2]
    assert [t.shape[0] for t in averaged.pipeline_embeds(1.0)] == [1]
    out = _inpaint(pipeline, target, **mean.call_kwargs(pipeline, averaged, scale=0.7, guidance=GUIDANCE))
    assert out.shape == (64, 64, 3)
    with pytest.raises(SettingsError, match="combination"):
        IdentityAdapter(str(adapter_dir), combine="median")


def test_photo_without_a_face_is_a_clear_error(adapter_dir: Path, astronaut: Image.Image, tmp_path: Path) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    path = tmp_path / "holiday.png"
    noise.save(path)
    adapter = IdentityAdapter(str(adapter_dir))
    with pytest.raises(NoFaceError, match=r"holiday\.png: no face found"):
        adapter.references([astronaut, path])
    with pytest.raises(NoFaceError, match="second photo"):
        adapter.references([astronaut, noise], names=["first photo", "second photo"])
    with pytest.raises(SettingsError, match="no reference photos"):
        adapter.references([])
    with pytest.raises(SettingsError, match="at most"):
        adapter.references([astronaut] * 9)


def test_scale_outside_its_range_is_refused(tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image) -> None:
    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir))
    embeds = adapter.embeds(pipeline, adapter.references([astronaut]))
    for bad in (float("nan"), -0.1, 9.0):
        with pytest.raises(SettingsError, match="identity scale"):
            adapter.call_kwargs(pipeline, embeds, scale=bad, guidance=GUIDANCE)


def test_low_vram_offload_gets_the_encoder_hooked_and_the_same_result(
    tiny_model_dir: Path, adapter_dir: Path, astronaut: Image.Image, target: dict[str, Any]
) -> None:
    """Model CPU offload works with device="cpu", so the ordering contract is tested for real here."""
    plain = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter(str(adapter_dir))
    expected = _inpaint(plain, target, **_identity(adapter, plain, _astronaut_photos(astronaut)))

    offloaded = _pipeline(tiny_model_dir)
    offloaded.enable_model_cpu_offload(device="cpu")  # as load_inpaint_pipeline(low_vram=True) on a GPU
    hooks = len(offloaded._all_hooks)
    adapter = IdentityAdapter(str(adapter_dir))
    adapter.load(offloaded)
    # Hooked before any pipeline call: the encoder runs (for the embeddings) before the first inpaint,
    # on the offload device; diffusers itself would only re-hook at the end of the next call.
    assert len(offloaded._all_hooks) == hooks + 1 and hasattr(offloaded.image_encoder, "_hf_hook")
    got = _inpaint(offloaded, target, **_identity(adapter, offloaded, _astronaut_photos(astronaut)))
    assert np.array_equal(got, expected)


def test_loaded_weights_do_not_follow_the_file_rewritten_in_place(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_dir, folder)
    pipeline = _pipeline(tiny_model_dir)
    IdentityAdapter(str(folder)).load(pipeline)
    modules = [pipeline.image_encoder, pipeline.unet.encoder_hid_proj]
    before = [p.detach().clone() for module in modules for p in module.parameters()]
    for file in (folder / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT, folder / IP_ADAPTER_ENCODER / "model.safetensors"):
        header = struct.unpack("<Q", file.read_bytes()[:8])[0]
        with open(file, "r+b") as handle:  # what an in-place rewrite does to a memory map
            handle.seek(8 + header)
            handle.write(b"\x11" * (file.stat().st_size - 8 - header))
    after = [p.detach() for module in modules for p in module.parameters()]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(before, after, strict=True))


def test_unsafe_or_missing_adapters_are_refused_in_one_sentence(adapter_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        IdentityAdapter(str(adapter_dir), weight_name="ip-adapter-plus-face_sdxl_vit-h.bin")
    renamed = tmp_path / "renamed"
    shutil.copytree(adapter_dir, renamed)
    (renamed / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT).write_bytes(b"\x80\x04K\x01." + b"\0" * 64)
    with pytest.raises(UnsafeWeightsError, match="content is a pickle"):
        IdentityAdapter(str(renamed)).local_folder()
    pickled_encoder = tmp_path / "pickled-encoder"
    shutil.copytree(adapter_dir, pickled_encoder)
    encoder = pickled_encoder / IP_ADAPTER_ENCODER
    (encoder / "model.safetensors").rename(encoder / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match="pytorch_model.bin"):
        IdentityAdapter(str(pickled_encoder)).local_folder()
    for source in (str(tmp_path / "nowhere"), "./relative/folder"):
        with pytest.raises(ModelLoadError, match="no such folder"):
            IdentityAdapter(source).local_folder()


def test_hub_id_uses_the_cache_and_says_how_to_fix_a_miss(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError) as missing:
        IdentityAdapter("someone/ip-adapter-copy").local_folder()
    message = str(missing.value)
    assert "\n" not in message and "cannot be downloaded now" in message and "hf download" in message

    repo = tmp_path / "models--someone--ip-adapter-copy"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(adapter_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    pipeline = _pipeline(tiny_model_dir)
    adapter = IdentityAdapter("someone/ip-adapter-copy")
    adapter.load(pipeline)
    assert adapter.is_loaded(pipeline)
    adapter.load(pipeline)  # once: a second call changes nothing


def test_adapter_for_another_model_is_a_clear_error_and_leaves_the_pipeline_usable(
    tiny_model_dir: Path, adapter_dir: Path, target: dict[str, Any], tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "other"
    shutil.copytree(adapter_dir, folder)
    file = folder / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT
    tensors = load_file(str(file))
    for key in [k for k in tensors if k.endswith("to_k_ip.weight")]:
        tensors[key] = tensors[key][:, :16].contiguous()  # a different cross-attention width (as SD 1.5's)
    save_file(tensors, str(file))
    pipeline = _pipeline(tiny_model_dir)
    before = _inpaint(pipeline, target)
    with pytest.raises(ModelLoadError, match="does not fit this base model"):
        IdentityAdapter(str(folder)).load(pipeline)
    assert np.array_equal(_inpaint(pipeline, target), before)


def test_in_memory_photos_are_hashed_by_pixels(adapter_dir: Path, astronaut: Image.Image) -> None:
    adapter = IdentityAdapter(str(adapter_dir))
    png = io.BytesIO()
    astronaut.save(png, format="PNG")
    by_image = adapter.references([astronaut])[0].sha256
    assert adapter.references([np.asarray(astronaut)])[0].sha256 == by_image
    assert adapter.references([png.getvalue()])[0].sha256 != by_image  # bytes: the file's own hash
