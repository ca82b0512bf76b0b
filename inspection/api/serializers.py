import json
import unicodedata

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inspection.errors import ImageMissing
from inspection.images import image_too_large
from inspection.models import (
    AutomationLevel,
    DecidedBy,
    Inspection,
    InspectionStatus,
    Outcome,
    PredictionRole,
)
from loupe.common.api_docs import not_blank_pattern
from loupe.common.errors import InvalidInput

MAX_EXTERNAL_ID = 128
MAX_METADATA_BYTES = 16 * 1024
# read_submission's rules on external_id as one pattern, for the OpenAPI schema: no control
# character (Unicode Cc) anywhere, and something left after stripping whitespace.
EXTERNAL_ID_PATTERN = not_blank_pattern(forbidden=r"\x00-\x1f\x7f-\x9f")


MAX_METADATA_DEPTH = 32


def _metadata_problem(metadata) -> str | None:
    """Why the decoded metadata cannot be stored, or None. Iterative, so no nesting can
    exhaust the stack (a recursive walk of 900 levels did: an HTML 500)."""
    stack = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_METADATA_DEPTH:
            return f"metadata nests objects and arrays deeper than {MAX_METADATA_DEPTH} levels"
        if isinstance(value, str):
            if "\x00" in value:
                return "metadata must not contain NUL characters"
        elif isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return None


def parse_metadata(raw: str) -> dict:
    """A JSON object that PostgreSQL's jsonb can store, or InvalidInput."""
    try:
        metadata = json.loads(raw)
        # Python's json accepts NaN, Infinity and lone surrogates; jsonb does not.
        json.dumps(metadata, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise InvalidInput(f"metadata is not valid JSON: {exc}", field="metadata") from None
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    problem = _metadata_problem(metadata)
    if problem:
        raise InvalidInput(problem, field="metadata")
    return metadata


def _refuse_repeated_parts(data) -> None:
    """Two external_ids (or images, or metadata) in one request: which one is meant? Refused
    rather than picking one."""
    for name in ("external_id", "metadata", "image"):
        count = len(data.getlist(name)) if hasattr(data, "getlist") else 0
        if count > 1:
            raise InvalidInput(f"{name} is sent {count} times; send it once", field=name)


def read_submission(request) -> tuple[str, dict, bytes]:
    """Pull external_id, metadata and image bytes out of a multipart POST, or raise.

    external_id: 1 to MAX_EXTERNAL_ID characters as sent, no control characters, not blank;
    surrounding whitespace is dropped (EXTERNAL_ID_PATTERN states the same for the schema).
    """
    _refuse_repeated_parts(request.data)
    external_id = request.data.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        raise InvalidInput("external_id is required", field="external_id")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise InvalidInput(
            f"external_id is {len(external_id)} characters; the limit is {MAX_EXTERNAL_ID}",
            field="external_id",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in external_id):
        raise InvalidInput("external_id must not contain control characters", field="external_id")
    external_id = external_id.strip()

    metadata = {}
    raw = request.data.get("metadata")
    if raw not in (None, ""):
        if not isinstance(raw, str) or len(raw.encode()) > MAX_METADATA_BYTES:
            raise InvalidInput(
                f"metadata must be a JSON object of at most {MAX_METADATA_BYTES} bytes",
                field="metadata",
            )
        metadata = parse_metadata(raw)

    upload = request.FILES.get("image")
    if upload is None:
        raise ImageMissing("the multipart field 'image' is required", field="image")
    if upload.size > settings.LOUPE_MAX_IMAGE_BYTES:
        # Refuse before reading the bytes into memory.
        raise image_too_large(upload.size, settings.LOUPE_MAX_IMAGE_BYTES)
    return external_id, metadata, upload.read()


class SubmissionSerializer(serializers.Serializer):
    """The POST body, for the OpenAPI schema; read_submission does the checking."""

    image = serializers.FileField(
        help_text=(
            "JPEG or PNG, 8-bit grayscale, RGB or RGBA, within the server's byte and pixel "
            "limits (413 above them; 415 for another format; 400 when truncated or corrupt)."
        )
    )
    external_id = serializers.CharField(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        validators=[RegexValidator(EXTERNAL_ID_PATTERN)],
        trim_whitespace=False,
        help_text=(
            "Serial or lot reference; the idempotency key. No control characters, not only "
            "whitespace; surrounding whitespace is dropped."
        ),
    )
    metadata = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_METADATA_BYTES,
        help_text=(
            f"A JSON object, as a string: at most {MAX_METADATA_BYTES} bytes of UTF-8 and "
            f"{MAX_METADATA_DEPTH} levels of nesting; no NaN, Infinity or NUL characters. "
            "Empty means none."
        ),
    )


class RegionSerializer(serializers.Serializer):
    x0 = serializers.FloatField()
    y0 = serializers.FloatField()
    x1 = serializers.FloatField()
    y1 = serializers.FloatField()
    label = serializers.CharField()
    score = serializers.FloatField()


LEVELS_HIDING_MODEL = {AutomationLevel.HUMAN_ONLY, AutomationLevel.SHADOW}


class InspectionAnswerSerializer(serializers.ModelSerializer):
    """What a station sees. In shadow level the model's output is recorded but not shown."""

    status = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()
    decided_at = serializers.SerializerMethodField()
    defect_probability = serializers.SerializerMethodField()
    regions = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()
    latency_ms = serializers.SerializerMethodField()

    class Meta:
        model = Inspection
        fields = [
            "id",
            "external_id",
            "status",
            "decision",
            "decided_by",
            "decided_at",
            "defect_probability",
            "regions",
            "model_version",
            "latency_ms",
            "automation_level",
            "fail_safe_reason",
            "received_at",
        ]

    def _decision(self, obj):
        """The final decision, or None. A human's decision is final only once its inspector
        can no longer undo it (Decision.final_at), so a station never acts on one taken back."""
        decision = (
            getattr(obj, "decision", None) if obj.status == InspectionStatus.DECIDED else None
        )
        if decision is not None and not decision.is_final():
            return None
        return decision

    @extend_schema_field({"type": "string", "enum": InspectionStatus.values})
    def get_status(self, obj) -> str:
        if obj.status == InspectionStatus.DECIDED and self._decision(obj) is None:
            return InspectionStatus.IN_REVIEW  # decided moments ago, still undoable
        return obj.status

    def _prediction(self, obj):
        if obj.automation_level in LEVELS_HIDING_MODEL:
            return None
        for prediction in obj.predictions.all():
            if (
                prediction.role == PredictionRole.PRIMARY
                and prediction.model_version_id == obj.model_version_id
            ):
                return prediction
        return None

    @extend_schema_field({"type": "string", "enum": [*Outcome.values, "review", "pending"]})
    def get_decision(self, obj) -> str:
        decision = self._decision(obj)
        if decision is not None:
            return decision.outcome
        return "review" if self.get_status(obj) == InspectionStatus.IN_REVIEW else "pending"

    @extend_schema_field({"type": "string", "nullable": True, "enum": [*DecidedBy.values, None]})
    def get_decided_by(self, obj) -> str | None:
        decision = self._decision(obj)
        return decision.decided_by if decision else None

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_decided_at(self, obj) -> str | None:
        decision = self._decision(obj)
        return decision.decided_at.isoformat() if decision else None

    def get_defect_probability(self, obj) -> float | None:
        prediction = self._prediction(obj)
        return round(prediction.defect_probability, 4) if prediction else None

    @extend_schema_field(RegionSerializer(many=True))
    def get_regions(self, obj) -> list[dict]:
        prediction = self._prediction(obj)
        return prediction.regions if prediction else []

    def get_model_version(self, obj) -> str | None:
        prediction = self._prediction(obj)
        return prediction.model_version.name if prediction else None

    def get_latency_ms(self, obj) -> float | None:
        prediction = self._prediction(obj)
        return round(prediction.latency_ms, 2) if prediction else None
