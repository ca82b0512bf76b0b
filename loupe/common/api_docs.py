"""The OpenAPI description of API errors: the body loupe.common.api_errors answers with, and
one documented response per status code an operation can answer."""

from collections.abc import Iterable

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ApiErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code a script can test, e.g. invalid_input.")
    detail = serializers.CharField(help_text="What was wrong, in words.")
    field = serializers.CharField(
        required=False, help_text="The request field at fault, when there is one."
    )
    fields = serializers.DictField(
        required=False,
        child=serializers.JSONField(),
        help_text="Every refused field with its messages (refused JSON bodies only).",
    )


_WHY = {
    400: "The request is malformed or breaks a rule stated in its schema or description.",
    401: "No credentials, or credentials that are not valid.",
    403: "The credentials are valid but may not do this.",
    404: "Not found, or not visible to these credentials.",
    405: "The method is not allowed here.",
    409: "Conflicts with what is stored.",
    413: "The upload is over a size limit.",
    415: "The body or the uploaded file is of a type this operation does not take.",
    503: "A service Loupe depends on is down; retry after the Retry-After header's seconds.",
}


def error_responses(
    statuses: Iterable[int], why: dict[int, str] | None = None
) -> dict[int, OpenApiResponse]:
    """{status: response} for extend_schema(responses=...); `why` says what a status means in
    this operation, where the general words would not."""
    why = why or {}
    return {
        status: OpenApiResponse(ApiErrorSerializer, description=why.get(status, _WHY[status]))
        for status in statuses
    }


# Python's str.strip() removes exactly these (str.isspace), as a regular expression class body.
# Spelt out because JSON Schema's \s differs (it counts U+FEFF and not U+001C-001F or U+0085).
PY_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def not_blank_pattern(forbidden: str = "") -> str:
    """A JSON Schema pattern for text that keeps a character after .strip(), and holds none of
    the `forbidden` class body (e.g. control characters) anywhere."""
    allowed = f"[^{forbidden}]" if forbidden else "."
    return f"^{allowed}*[^{forbidden}{PY_WHITESPACE}]{allowed}*$"


class StrictSerializer(serializers.Serializer):
    """A JSON object whose unknown keys are refused, not ignored: a misspelt filter must not
    silently select everything. Documented as additionalProperties: false."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            raise serializers.ValidationError(
                {key: ["this field is not known here"] for key in unknown}
            )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField also takes 5 as "5", which the schema says it does
    not."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializerScheme(OpenApiSerializerExtension):
    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema
