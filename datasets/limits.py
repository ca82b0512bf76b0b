"""Limits of dataset imports and exports, read from Django settings at call time (so tests
can change them with the settings fixture). Defaults fit one plant server."""

from django.conf import settings


def import_max_bytes() -> int:
    """Largest uploaded archive (the zip as sent)."""
    return getattr(settings, "LOUPE_IMPORT_MAX_BYTES", 500 * 1024 * 1024)


def import_max_files() -> int:
    """Most entries in an archive, folders included."""
    return getattr(settings, "LOUPE_IMPORT_MAX_FILES", 50_000)


def import_max_unpacked_bytes() -> int:
    """Most bytes all entries may unpack to: a zip bomb is refused from its directory."""
    return getattr(settings, "LOUPE_IMPORT_MAX_UNPACKED_BYTES", 2 * 1024 * 1024 * 1024)


def import_max_json_bytes() -> int:
    """Largest annotations.json: it is parsed in memory."""
    return getattr(settings, "LOUPE_IMPORT_MAX_JSON_BYTES", 100 * 1024 * 1024)


def image_max_bytes() -> int:
    return settings.LOUPE_MAX_IMAGE_BYTES


def image_max_pixels() -> int:
    return settings.LOUPE_MAX_IMAGE_PIXELS


def export_keep_days() -> int:
    """Days a finished export's zip stays on disk: every export is a full copy of its images."""
    return getattr(settings, "LOUPE_EXPORT_KEEP_DAYS", 7)


def datasets_queue() -> str:
    """The Celery queue of exports and imports: long file work stays off the inference queue."""
    return getattr(settings, "LOUPE_DATASETS_QUEUE", "datasets")
