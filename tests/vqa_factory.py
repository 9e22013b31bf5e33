"""A tiny randomly initialised BLIP-VQA model, saved like a hub model, for caption tests (no download)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_blip_vqa(out: Path) -> Path:
    """A randomly initialised BLIP-VQA with a locally written vocabulary, saved like a hub model."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    out.mkdir(parents=True, exist_ok=True)
    words = "what is the person doing kind of lighting in photo color light facial expression background hair how long"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "?", "'", "s", *words.split(), "smiling", "trees"]
    (out / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizer(str(out / "vocab.txt"), bos_token="[DEC]")
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        encoder_hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32, image_text_hidden_size=32)
    BlipForQuestionAnswering(config).save_pretrained(out)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out
