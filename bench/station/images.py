"""The images the stations post, and their decoding as the model's callers do it."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from .config import POOL_SIZE


def image_pool(count: int = POOL_SIZE, seed: int = 20240) -> list[bytes]:
    """Product images as a camera would post them: the generator's default 128 px PNGs."""
    import numpy as np

    from ml.engine.generator import SurfaceConfig, render_surface

    pool = []
    for index in range(count):
        image, _ = render_surface(np.random.default_rng([seed, index]), SurfaceConfig())
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pool.append(buffer.getvalue())
    return pool


def tagged_png(png: bytes, tag: str) -> bytes:
    """The same pixels with a tEXt chunk after IHDR, so every post is new content.

    Images are stored by content hash: a repeated image would skip the write and fsync that
    every real (never identical) camera image costs.
    """
    data = b"loupe-bench\0" + tag.encode()
    crc = struct.pack(">I", zlib.crc32(b"tEXt" + data))
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + crc
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


def decode(png: bytes):
    """Open the PNG bytes with PIL and decode them fully, as the worker does."""
    image = Image.open(io.BytesIO(png))
    image.load()
    return image
