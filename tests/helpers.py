"""Helpers the Django tests share."""

import io

from PIL import Image

LEVELS = ["human_only", "shadow", "assist", "partial", "full"]


def image_bytes(fmt: str = "PNG", size=(128, 128), mode: str = "RGB", seed: int = 0) -> bytes:
    """A small generated product image (a gradient with a dark spot; seed varies it)."""
    image = Image.new(mode, size)
    if mode in ("RGB", "L", "RGBA"):
        image = Image.linear_gradient("L").resize(size).convert(mode)
        spot = Image.new(mode, (8 + seed % 20, 8), color=0 if mode == "L" else (0,) * len(mode))
        image.paste(spot, (seed * 7 % (size[0] - 30), seed * 13 % (size[1] - 10)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
