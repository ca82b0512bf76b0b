"""The datasets API's request bodies (checked here) and answers (described here, built by
datasets.payloads), so the OpenAPI schema states every field and rule a script meets."""

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from datasets import services
from datasets.models import ExportFormat, ExportImportState, ImportFormat
from labeling.models import LabelSource
from loupe.common.api_docs import StrictCharField, StrictSerializer, not_blank_pattern

NAME_PATTERN = not_blank_pattern(forbidden=r"\x00")
name_check = RegexValidator(
    NAME_PATTERN, "must hold a character that is not whitespace, and no NUL"
)
# The service parses the date; the pattern keeps out what Python's date.fromisoformat also
# takes ("20261126", "2026-W48-4") but a JSON Schema date is not.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@extend_schema_field({"type": "string", "format": "date", "pattern": DATE_PATTERN})
class DateStringField(StrictCharField):
    def __init__(self, **kwargs):
        check = RegexValidator(DATE_PATTERN, "must be a date like 2026-11-26")
        super().__init__(validators=[check], **kwargs)


class FiltersSerializer(StrictSerializer):
    """Which labeled inspections to freeze; unknown filters are refused."""

    lines = serializers.ListField(
        child=StrictCharField(), required=False, help_text="Line names; none: all of yours."
    )
    date_from = DateStringField(required=False, help_text="Received on or after, e.g. 2026-11-26.")
    date_to = DateStringField(required=False, help_text="Received on or before.")
    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=LabelSource.choices), required=False
    )
    classes = serializers.ListField(
        child=StrictCharField(), required=False, help_text="Items with a box of these classes."
    )


class FreezeSerializer(StrictSerializer):
    """A freeze; unknown fields are refused."""

    # not trimmed here: the service strips it, after the length is checked as sent
    name = StrictCharField(
        required=False,
        max_length=services.MAX_NAME_LENGTH,
        trim_whitespace=False,
        validators=[name_check],
        help_text="Unique among versions; default ds-<n>.",
    )
    filters = FiltersSerializer(required=False)


class ExportRequestSerializer(StrictSerializer):
    """An export; unknown fields are refused."""

    format = serializers.ChoiceField(choices=ExportFormat.choices)


class ImportRequestSerializer(serializers.Serializer):
    """An import: the zip, its line and its format."""

    archive = serializers.FileField(help_text="A zip, within the server's import limits.")
    line = StrictCharField(
        trim_whitespace=False,
        validators=[name_check],
        help_text="One of your lines, by name.",
    )
    format = serializers.ChoiceField(choices=ImportFormat.choices)


# Answers ---------------------------------------------------------------------------------


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version_hash = serializers.CharField()
    filters = serializers.DictField(help_text="The selection it was frozen from.")
    classes = serializers.ListField(child=serializers.CharField())
    counts = serializers.DictField(help_text="{split: {images, defect_free, boxes: {class: n}}}")
    item_count = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    manifest_url = serializers.CharField()


class VersionListSerializer(serializers.Serializer):
    versions = VersionSerializer(many=True)


class ExportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    state = serializers.ChoiceField(choices=ExportImportState.choices)
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    size_bytes = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.CharField()
    removed_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.CharField(
        allow_null=True, help_text="Set once the zip can be downloaded."
    )


class ExportListSerializer(serializers.Serializer):
    exports = ExportSerializer(many=True)


class FileProblemSerializer(serializers.Serializer):
    file = serializers.CharField()
    reason = serializers.CharField()


class ImportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    line = serializers.CharField()
    format = serializers.ChoiceField(choices=ImportFormat.choices)
    archive_name = serializers.CharField()
    state = serializers.ChoiceField(choices=ExportImportState.choices)
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    created_count = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    problem_count = serializers.IntegerField()
    problems = FileProblemSerializer(many=True, help_text="Any of them refuses the archive.")
    skipped = FileProblemSerializer(many=True, help_text="Left out; the archive is kept.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.CharField()


class ImportListSerializer(serializers.Serializer):
    imports = ImportSerializer(many=True)
