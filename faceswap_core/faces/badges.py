"""Face numbers drawn on a photo, so a person can say "face 2" (the Swap tab's photo, a clip's frame)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from faceswap_core.faces.detect import Face


def numbered(image: Image.Image, faces: Sequence[Face]) -> Image.Image:
    """The photo with each face's number in a badge above its top-left corner, sized to the face."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for number, face in enumerate(faces, start=1):
        x0, y0, _, _ = face.box
        size = int(min(max(face.width * 0.28, 14), 64))
        font = ImageFont.load_default(size=size)
        left, top = max(0, x0 - size * 0.3), max(0, y0 - size * 1.3)
        box = (left, top, left + size * (0.9 + 0.55 * (number >= 10)), top + size * 1.2)
        draw.rounded_rectangle(box, radius=size // 4, fill=(255, 140, 0), outline=(255, 255, 255), width=2)
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), str(number), fill="white", font=font, anchor="mm")
    return out
