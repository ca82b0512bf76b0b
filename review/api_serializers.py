"""The review API's request bodies (checked here) and answers (rendered here), so the OpenAPI
schema states every field a line-side terminal sends and receives.

An answer never carries `model_agrees`: whether the model agreed is not shown before a
decision is final, or an inspector could flip a decision after seeing it (issue 10, point 5).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inspection import decisions
from inspection.api.serializers import RegionSerializer
from inspection.models import (
    AutomationLevel,
    Outcome,
    PredictionRole,
    ReviewItem,
    ReviewReason,
    ReviewState,
)
from loupe.common.api_docs import StrictCharField, StrictSerializer

# as Django's BigAutoField: a larger id cannot name a row
MAX_ID = 2**63 - 1
# what review.services.decide_review_item accepts
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField also takes "5", 5.0 and true, which the schema
    says it does not."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- requests ------------------------------------------------------------------------------


class NextRequestSerializer(StrictSerializer):
    """Which item to claim next; unknown fields are refused."""

    line = StrictCharField(
        required=False,
        trim_whitespace=False,
        help_text="Only this line's items (its name); none: every line of yours.",
    )
    exclude = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=200,
        help_text="Review item ids this terminal already shows (a terminal showing several).",
    )


class DecideRequestSerializer(StrictSerializer):
    """An inspector's decision; unknown fields are refused."""

    decision = serializers.ChoiceField(choices=Outcome.choices)
    time_spent_ms = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_TIME_SPENT_MS,
        help_text="How long the inspector looked at the item, for the review figures.",
    )


class EmptyRequestSerializer(StrictSerializer):
    """No fields: an empty JSON object, or no body at all."""


# --- answers -------------------------------------------------------------------------------


class ModelOutputSerializer(serializers.Serializer):
    defect_probability = serializers.FloatField()
    regions = RegionSerializer(many=True)
    version = serializers.CharField(help_text="The model version that predicted.")


def shown_model_output(item: ReviewItem) -> dict | None:
    """The model's answer on the item, or None where the inspector must not see it.

    The same rule as the review page: shadow items, audits and blind samples hide it
    (`shows_model` is false), or the agreement they measure would be anchored on the model.
    """
    if not item.shows_model:
        return None
    prediction = (
        item.inspection.predictions.filter(role=PredictionRole.PRIMARY)
        .select_related("model_version")
        .order_by("created_at")
        .first()
    )
    if prediction is None:
        return None
    return {
        "defect_probability": prediction.defect_probability,
        "regions": prediction.regions,
        "version": prediction.model_version.name,
    }


def claimed_until(item: ReviewItem) -> datetime | None:
    if item.state != ReviewState.OPEN or item.claimed_at is None:
        return None
    return item.claimed_at + timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S)


class ReviewItemSerializer(serializers.Serializer):
    """One review item as a terminal shows it."""

    id = serializers.IntegerField(source="pk")
    inspection_id = serializers.IntegerField()
    external_id = serializers.CharField(
        source="inspection.external_id", help_text="The product's serial, as the station sent it."
    )
    line = serializers.CharField(source="inspection.line.name")
    level = serializers.ChoiceField(
        source="inspection.automation_level",
        choices=AutomationLevel.choices,
        help_text="The line's automation level when the item was routed.",
    )
    reason = serializers.ChoiceField(choices=ReviewReason.choices, help_text="Why it is here.")
    state = serializers.ChoiceField(choices=ReviewState.choices)
    width = serializers.IntegerField(source="inspection.width")
    height = serializers.IntegerField(source="inspection.height")
    image_url = serializers.SerializerMethodField(
        help_text="The image; fetch it with the same API token."
    )
    received_at = serializers.DateTimeField(source="inspection.received_at")
    claimed_until = serializers.SerializerMethodField(
        help_text="When the claim lapses unless kept (POST .../keep); null when not claimed."
    )
    model = serializers.SerializerMethodField(
        help_text="The model's answer where the line shows it (assist, partial); null in shadow, "
        "for audits and blind samples, and where no model ran."
    )

    def get_image_url(self, item) -> str:
        return reverse("review-api:image", args=[item.pk])

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_claimed_until(self, item) -> datetime | None:
        until = claimed_until(item)
        return serializers.DateTimeField().to_representation(until) if until else None

    @extend_schema_field(ModelOutputSerializer(allow_null=True))
    def get_model(self, item) -> dict | None:
        output = shown_model_output(item)
        return ModelOutputSerializer(output).data if output else None


class NextAnswerSerializer(serializers.Serializer):
    item = ReviewItemSerializer(
        allow_null=True, help_text="The item now claimed for you; null when none is open."
    )
    open_count = serializers.IntegerField(help_text="Open items left (of the line, if named).")


class DecisionAnswerSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    state = serializers.ChoiceField(choices=ReviewState.choices)
    decision = serializers.ChoiceField(choices=Outcome.choices)
    decided_at = serializers.DateTimeField()
    undo_until = serializers.SerializerMethodField(
        help_text="Until then POST .../undo takes the decision back; after it, it is final."
    )

    def get_undo_until(self, item) -> datetime:
        return serializers.DateTimeField().to_representation(
            item.decided_at + decisions.undo_window()
        )


class DecideAnswerSerializer(DecisionAnswerSerializer):
    open_count = serializers.SerializerMethodField(help_text="Open items left on your lines.")

    def get_open_count(self, item) -> int:
        return self.context["open_count"]


class UndoAnswerSerializer(serializers.Serializer):
    item = ReviewItemSerializer(help_text="The item, open again and claimed for you.")
    open_count = serializers.IntegerField()


class KeepAnswerSerializer(serializers.Serializer):
    kept = serializers.BooleanField()
    claimed_until = serializers.DateTimeField()


class ReleaseAnswerSerializer(serializers.Serializer):
    released = serializers.BooleanField(
        help_text="Always true: the item is not yours any more (if it ever was)."
    )
