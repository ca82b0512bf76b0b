"""One place that turns errors into JSON answers: {"error": code, "detail": message, "field"}.

`detail` is always a sentence, so a script can print it; a refused serializer adds `fields`,
every field's messages, and names the first in `field`.
"""

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from loupe.common.errors import LoupeError


def _first_message(data, path: str = "") -> tuple[str, str]:
    """(dotted field path, message) of the first error in a serializer's nested errors."""
    if isinstance(data, dict):
        for key, value in data.items():
            name = path if key == "non_field_errors" else f"{path}.{key}" if path else str(key)
            return _first_message(value, name)
    if isinstance(data, list):
        for index, value in enumerate(data):
            if isinstance(value, dict | list):
                return _first_message(value, f"{path}.{index}" if path else str(index))
            return path, str(value)
    return path, str(data)


def _refused_body(exc: exceptions.ValidationError) -> dict:
    field, message = _first_message(exc.detail)
    body = {"error": "invalid_input", "detail": f"{field}: {message}" if field else message}
    if field:
        body["field"] = field
    if isinstance(exc.detail, dict):
        body["fields"] = exc.detail
    return body


def api_exception_handler(exc, context):
    if isinstance(exc, LoupeError):
        body = {"error": exc.code, "detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # Django's own limit on the form fields of a request (not on uploaded files)
        return Response({"error": "request_too_large", "detail": str(exc)}, status=413)
    if isinstance(exc, SuspiciousOperation):
        # too many fields or files, a malformed multipart body: Django's answer is an HTML 400
        return Response({"error": "invalid_request", "detail": str(exc)}, status=400)
    # DRF turns these into its own exceptions inside exception_handler; turned here first, so
    # their answers get the same body as every other error
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _refused_body(exc)
    elif isinstance(exc, exceptions.APIException):
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        code = exc.get_codes() if detail is not None else "invalid_input"
        response.data = {
            "error": code if isinstance(code, str) else "invalid_input",
            "detail": str(detail) if detail is not None else str(response.data),
        }
    return response


def not_found(request, exception=None):
    """handler404: a JSON 404 under /api/ (a script asked for a URL that is not there), the
    site's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": "not_found", "detail": f"no API endpoint at {request.path}"}, status=404
        )
    return defaults.page_not_found(request, exception)
