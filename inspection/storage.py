"""Content-addressed image files under MEDIA_ROOT: the same bytes are stored once."""

import os
import tempfile
from pathlib import Path

from django.conf import settings


def image_name(sha256: str, extension: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{extension}"


def store_image(data: bytes, *, sha256: str, extension: str) -> str:
    """Write the bytes once and return the storage name; a crash never leaves a partial file."""
    name = image_name(sha256, extension)
    path = Path(settings.MEDIA_ROOT) / name
    if path.exists():
        return name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def image_path(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / name


def delete_image(name: str) -> None:
    image_path(name).unlink(missing_ok=True)
