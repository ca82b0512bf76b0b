"""One place that turns errors into JSON answers: {"error": code, "detail": message, "field"}."""

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from loupe.common.errors import LoupeError


def api_exception_handler(exc, context):
    if isinstance(exc, LoupeError):
        body = {"error": exc.code, "detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        code = exc.get_codes() if detail is not None else "invalid_input"
        response.data = {
            "error": code if isinstance(code, str) else "invalid_input",
            "detail": detail if detail is not None else response.data,
        }
    return response
