"""Write a diffusers SDXL folder as one original-format (Stability/LDM key layout) ``.safetensors`` checkpoint.

Model sites ship SDXL as a single file with the original training code's key names; diffusers'
``from_single_file`` converts those back. No such file can be downloaded in tests, so this builds
one from the tiny model by running diffusers' converters in reverse: loading it back must give the
folder's weights exactly, which tests the real single-file path offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

UNET_LAYERS = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
UNET_RESNET = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "time_emb_proj.": "emb_layers.1.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "conv_shortcut.": "skip_connection.",
}
VAE_ATTENTION = {
    "group_norm.": "norm.",
    "to_q.": "q.",
    "to_k.": "k.",
    "to_v.": "v.",
    "to_out.0.": "proj_out.",
}
OPEN_CLIP_LAYER = {
    "self_attn.out_proj.": "attn.out_proj.",
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
}


def save_single_file_checkpoint(model_dir: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Convert the diffusers SDXL folder ``model_dir`` into one LDM-layout ``out_file``; returns the file."""
    from diffusers import StableDiffusionXLInpaintPipeline
    from safetensors.torch import save_file

    pipeline = StableDiffusionXLInpaintPipeline.from_pretrained(model_dir)
    checkpoint: dict[str, torch.Tensor] = {}
    checkpoint.update(_unet_to_ldm(pipeline.unet.state_dict(), pipeline.unet.config))
    checkpoint.update(_vae_to_ldm(pipeline.vae.state_dict(), len(pipeline.vae.config.up_block_types)))
    checkpoint.update(_clip_to_ldm(pipeline.text_encoder.state_dict()))
    checkpoint.update(_open_clip_to_ldm(pipeline.text_encoder_2.state_dict()))
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in checkpoint.items()}, out)
    return out


def _convert(
    state: dict[str, torch.Tensor], rename: Callable[[str], str | None], prefix: str
) -> dict[str, torch.Tensor]:
    """Rename every key; a key the mapping does not know is a bug here, not a silently dropped weight."""
    out = {}
    for key, value in state.items():
        new = rename(key)
        if new is None:
            raise KeyError(f"no original-format name for {key}")
        out[prefix + new] = value
    return out


def _replace_first(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def _unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """UNet: flat ``input_blocks``/``middle_block``/``output_blocks`` numbering instead of nested blocks.

    Each down block has ``layers_per_block`` resnet(+attention) entries, then one for its
    downsampler (not after the last block); each up block has one more entry, with the upsampler
    after the attention when there is one.
    """
    per_block = config["layers_per_block"] + 1

    def rename(key: str) -> str | None:
        parts = key.split(".")
        for old, new in UNET_LAYERS.items():
            if key.startswith(old):
                return new + key[len(old) :]
        if parts[0] == "down_blocks":
            block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                return f"input_blocks.{1 + block * per_block + index}.0.{_replace_first(rest, UNET_RESNET)}"
            if kind == "attentions":
                return f"input_blocks.{1 + block * per_block + index}.1.{rest}"
            if kind == "downsamplers":
                return f"input_blocks.{block * per_block + per_block}.0.op.{parts[-1]}"
        if parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                return f"middle_block.{2 * index}.{_replace_first(rest, UNET_RESNET)}"
            if kind == "attentions":
                return f"middle_block.1.{rest}"
        if parts[0] == "up_blocks":
            block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                return f"output_blocks.{block * per_block + index}.0.{_replace_first(rest, UNET_RESNET)}"
            if kind == "attentions":
                return f"output_blocks.{block * per_block + index}.1.{rest}"
            if kind == "upsamplers":
                has_attention = config["up_block_types"][block].startswith("CrossAttn")
                return f"output_blocks.{block * per_block + per_block - 1}.{2 if has_attention else 1}.conv.{parts[-1]}"
        return None

    return _convert(state, rename, UNET_PREFIX)


def _vae_to_ldm(state: dict[str, torch.Tensor], num_up_blocks: int) -> dict[str, torch.Tensor]:
    """VAE: ``down.N.block``/``up.N.block`` (decoder numbered from the bottom) and 1x1-conv attention."""

    def rename(key: str) -> str | None:
        side, _, name = key.partition(".")
        if side in ("quant_conv", "post_quant_conv"):
            return key
        parts = name.split(".")
        if parts[0] in ("conv_in", "conv_out"):
            return key
        if parts[0] == "conv_norm_out":
            return f"{side}.norm_out.{parts[-1]}"
        if parts[0] in ("down_blocks", "up_blocks"):
            stage = int(parts[1]) if side == "encoder" else num_up_blocks - 1 - int(parts[1])
            where = "down" if side == "encoder" else "up"
            if parts[2] == "resnets":
                rest = ".".join(parts[4:]).replace("conv_shortcut.", "nin_shortcut.")
                return f"{side}.{where}.{stage}.block.{parts[3]}.{rest}"
            if parts[2] in ("downsamplers", "upsamplers"):
                return f"{side}.{where}.{stage}.{'downsample' if side == 'encoder' else 'upsample'}.conv.{parts[-1]}"
        if parts[:2] == ["mid_block", "resnets"]:
            return f"{side}.mid.block_{int(parts[2]) + 1}.{'.'.join(parts[3:])}"
        if parts[:2] == ["mid_block", "attentions"]:
            return f"{side}.mid.attn_1.{_replace_first('.'.join(parts[3:]), VAE_ATTENTION)}"
        return None

    converted = _convert(state, rename, VAE_PREFIX)
    for key, value in converted.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and value.ndim == 2:
            converted[key] = value[:, :, None, None]  # the original attention uses 1x1 convolutions
    return converted


def _clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIP-L: the transformers layout under the embedder's prefix (``text_model.`` kept, as in SDXL files)."""
    return _convert(state, lambda key: key.removeprefix("text_model."), CLIP_L_PREFIX)


def _open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP bigG: ``resblocks`` with one fused q/k/v ``in_proj`` and a transposed ``text_projection`` matrix."""
    import torch

    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name = key.removeprefix("text_model.")
        if name == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif name == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif name.startswith("final_layer_norm."):
            out["ln_final." + name.split(".")[-1]] = value
        elif name == "text_projection.weight":
            out["text_projection"] = value.T
        elif name.startswith("encoder.layers."):
            parts = name.split(".")
            layer, rest = parts[2], ".".join(parts[3:])
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                fused.setdefault(f"transformer.resblocks.{layer}.attn.in_proj_{parts[-1]}", {})[parts[4]] = value
            else:
                out[f"transformer.resblocks.{layer}.{_replace_first(rest, OPEN_CLIP_LAYER)}"] = value
        else:
            raise KeyError(f"no original-format name for {key}")
    for name, projections in fused.items():
        out[name] = torch.cat([projections["q_proj"], projections["k_proj"], projections["v_proj"]])
    return {OPEN_CLIP_PREFIX + key: value for key, value in out.items()}
