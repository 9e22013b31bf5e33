"""LoRA training: dataset caching (``dataset``), the loop (``trainer``), checkpoints (``checkpoints``).

Importing this package loads no model and no torch; the trainer imports them when it runs.
"""

from faceswap_core.training.trainer import TrainProgress, TrainResult, train_lora

__all__ = ["TrainProgress", "TrainResult", "train_lora"]
