"""A dependency that is down (the database, the broker, a full disk) answers 503, not 500.

Such an error is not a bug and heals by itself: a station told "503, Retry-After" retries
the same external_id and gets its one answer. The API and the pages' JSON endpoints get
{"error": "unavailable", ...}; a browser page gets a plain 503 page. Everything else stays
a 500. The middleware catches what a view raises; `server_error` (handler500) what the
middleware around the views raises (a session or login looked up while the database is down).
"""

import errno
import logging
import sys

import kombu.exceptions
import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger(__name__)

# seconds a client should wait before retrying: a restart of PostgreSQL or Redis takes a few
RETRY_AFTER_S = 2
FULL_DISK = {errno.ENOSPC, errno.EDQUOT}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Loupe is briefly unavailable</title></head>
<body><h1>Loupe is briefly unavailable</h1>
<p>{what} does not answer. Nothing you saved is lost; try again in a few seconds.</p>
</body></html>
"""


def unavailable_dependency(exc: BaseException | None) -> str | None:
    """What is down, if `exc` (or an error it was raised from) says a dependency is."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OperationalError | InterfaceError):
            return "the database"
        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "the task broker"
        if isinstance(exc, kombu.exceptions.OperationalError):
            return "the task broker"
        if isinstance(exc, OSError) and exc.errno in FULL_DISK:
            return "the storage (disk full)"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def wants_json(request) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or "application/json" in accept
        or request.content_type == "application/json"
    )


def unavailable_response(request, what: str) -> HttpResponse:
    if wants_json(request):
        response = JsonResponse(
            {"error": "unavailable", "detail": f"{what} is unavailable; retry shortly"},
            status=503,
        )
    else:
        response = HttpResponse(PAGE.format(what=what.capitalize()), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        what = unavailable_dependency(exception)
        if what is None:
            return None
        logger.warning("%s %s: %s is unavailable (%s)", request.method, request.path, what,
                       exception)  # fmt: skip
        return unavailable_response(request, what)


def server_error(request):
    """handler500: a 503 when the error in flight is a dependency that is down."""
    what = unavailable_dependency(sys.exc_info()[1])
    if what is not None:
        return unavailable_response(request, what)
    if wants_json(request):
        return JsonResponse({"error": "server_error", "detail": "internal error"}, status=500)
    return defaults.server_error(request)
