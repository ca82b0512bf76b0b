"""Lookups for management commands: a missing object or a domain error becomes a
CommandError that names what exists, instead of a traceback."""

from django.core.management.base import CommandError
from django.db.models import QuerySet

from loupe.common.errors import LoupeError


def named(queryset: QuerySet, name: str, *, kind: str):
    """The object of `queryset` called `name`, or a CommandError listing the known names."""
    found = queryset.filter(name=name).first()
    if found is None:
        known = ", ".join(queryset.values_list("name", flat=True)[:50]) or "none yet"
        raise CommandError(f"no {kind} named {name!r} ({kind}s: {known})")
    return found


def as_command_error(exc: LoupeError) -> CommandError:
    return CommandError(exc.message)
