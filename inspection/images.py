"""Validation of uploaded product images, before anything is stored."""

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from inspection.errors import ImageCorrupt, ImageEmpty, ImageTooLarge, ImageUnsupported

SUPPORTED_FORMATS = {"JPEG": "jpg", "PNG": "png"}
SUPPORTED_MODES = frozenset({"L", "LA", "P", "RGB", "RGBA"})


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    sha256: str
    format: str
    extension: str
    width: int
    height: int


def image_too_large(size: int, max_bytes: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"the image is {size} bytes; the limit is {max_bytes} bytes", field="image"
    )


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ValidatedImage:
    """Check that `data` is a complete JPEG or PNG within the limits, or raise a LoupeError.

    The pixel limit is checked from the header, before pixels are allocated, so a
    decompression bomb is refused without being expanded. The full decode that follows
    catches truncated and corrupt files.
    """
    if len(data) == 0:
        raise ImageEmpty("the image file is empty", field="image")
    if len(data) > max_bytes:
        raise image_too_large(len(data), max_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                width, height = image.size
                mode = image.mode
                if image_format not in SUPPORTED_FORMATS:
                    raise ImageUnsupported(
                        f"image format {image_format} is not supported; send JPEG or PNG",
                        field="image",
                    )
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"the image is {width}x{height} = {width * height} pixels; "
                        f"the limit is {max_pixels} pixels",
                        field="image",
                    )
                if mode not in SUPPORTED_MODES:
                    raise ImageUnsupported(
                        f"image mode {mode} is not supported; send 8-bit grayscale, RGB or RGBA",
                        field="image",
                    )
                image.load()
            if image_format == "PNG":
                # load() does not check the CRCs of PNG data chunks; verify() does.
                with Image.open(io.BytesIO(data)) as again:
                    again.verify()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"the image has too many pixels: {exc}", field="image") from None
        except UnidentifiedImageError:
            raise ImageUnsupported(
                "the file is not a recognised image; send JPEG or PNG", field="image"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageCorrupt(f"the image is truncated or corrupt: {exc}", field="image") from None
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        extension=SUPPORTED_FORMATS[image_format],
        width=width,
        height=height,
    )
