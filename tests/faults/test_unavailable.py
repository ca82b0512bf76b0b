"""Which errors mean "a dependency is down, retry" (a 503) and which stay bugs (a 500).

The fault tests show the 503s with real outages; this pins down the line between the two.
"""

import errno

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError

from loupe.common.unavailable import unavailable_dependency


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (OperationalError("connection refused"), "the database"),
        (InterfaceError("connection already closed"), "the database"),
        (redis.exceptions.ConnectionError("refused"), "the task broker"),
        (redis.exceptions.TimeoutError("timed out"), "the task broker"),
        (kombu.exceptions.OperationalError("refused"), "the task broker"),
        (OSError(errno.ENOSPC, "No space left on device"), "the storage (disk full)"),
        (_raised_from(OperationalError("gone")), "the database"),
    ],
)
def test_a_dependency_that_is_down_is_named(error, what):
    assert unavailable_dependency(error) == what


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        OSError(errno.ENOENT, "No such file"),  # a missing file is not a full disk
        PermissionError(errno.EACCES, "Permission denied"),
        _raised_from(KeyError("a bug")),
        None,
    ],
)
def test_other_errors_stay_server_errors(error):
    assert unavailable_dependency(error) is None
