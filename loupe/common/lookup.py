from django.core.management.base import CommandError

from inspection.errors import LoupeError
from inspection.models import Line


def line_named(name: str) -> Line:
    line = Line.objects.filter(name=name).first()
    if line is None:
        known = ", ".join(Line.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"no line named {name!r} (lines: {known})")
    return line


def as_command_error(exc: LoupeError) -> CommandError:
    return CommandError(exc.message)
