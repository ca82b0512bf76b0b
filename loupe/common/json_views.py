"""Helpers for the JSON endpoints the browser pages call (session login + CSRF, not DRF).

Errors come back in the station API's shape, {"error": code, "detail": message}, so every
page can show the server's own words.
"""

import functools
import json

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse

from loupe.common.errors import LoupeError


def json_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def json_endpoint(view):
    """Wrap a view that returns a dict: parse the JSON body into request.json, turn domain
    errors, 403 and 404 into JSON answers."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        request.json = {}
        if request.method == "POST" and request.body:
            try:
                request.json = json.loads(request.body)
            except (ValueError, UnicodeDecodeError):
                return json_error(400, "malformed_json", "the request body is not valid JSON")
            if not isinstance(request.json, dict):
                return json_error(400, "malformed_json", "the request body must be a JSON object")
        try:
            result = view(request, *args, **kwargs)
        except LoupeError as error:
            return json_error(error.status_code, error.code, error.message)
        except PermissionDenied:
            return json_error(403, "forbidden", "your role does not allow this")
        except Http404:
            return json_error(404, "not_found", "no such item on your lines")
        if isinstance(result, dict):
            return JsonResponse(result)
        return result

    return wrapper
