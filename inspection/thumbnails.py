"""Small JPEG copies of inspection images for lists, made once and kept beside the media."""

import io
import os
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image

THUMB_SIZE = 160


def thumbnail_path(image_path: Path, sha256: str) -> Path:
    """The thumbnail of an image, made on first use. Images are content-addressed, so a
    thumbnail never goes stale."""
    target = Path(settings.MEDIA_ROOT) / "thumbs" / sha256[:2] / f"{sha256}.jpg"
    if target.exists():
        return target
    with Image.open(image_path) as image:
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".thumb-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp, target)
    return target
