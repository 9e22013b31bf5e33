"""faceswap: replace a face in a photo using SDXL inpainting and a LoRA of the person.

Importing the package loads no model and does not import Gradio.
"""

__version__ = "0.1.0"
