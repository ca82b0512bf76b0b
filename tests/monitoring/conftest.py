"""A partial line with two cameras, an inspector, and helpers that seed items through the
real services (receive, predict, route, decide) and then place them in time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import seed_inspection, seed_model_version


@pytest.fixture
def model(db):
    return seed_model_version("monitoring")


@pytest.fixture
def inspector(db):
    from accounts.services import create_user

    def make(*lines, username="ines"):
        return create_user(
            username=username,
            role="inspector",
            line_names=[line.name for line in lines],
            password="monitoring-test-1",
        )

    return make


@pytest.fixture
def seed(model):
    """seed(station, "id", p=0.9, latency_ms=40) -> an inspection routed by the model (p given)
    or left received (p None), its route latency set to latency_ms."""
    from inspection.models import Inspection

    def make(station, external_id, p=None, latency_ms=None):
        inspection = seed_inspection(station, external_id, probability=p, model_version=model)
        if latency_ms is not None and inspection.routed_at:
            Inspection.objects.filter(pk=inspection.pk).update(
                received_at=inspection.routed_at - timedelta(milliseconds=latency_ms)
            )
            inspection.refresh_from_db()
        return inspection

    return make


@pytest.fixture
def decide():
    """decide(inspection, "reject", user) -> the review item, decided by the review service."""
    from inspection.models import ReviewItem
    from review import services as review_services

    def make(inspection, outcome, user):
        item = ReviewItem.objects.get(inspection=inspection)
        return review_services.decide_review_item(item=item, inspector=user, outcome=outcome)

    return make


def totals(line, width_s=60):
    """Every bucket of the line added up (backlogs: the latest bucket's and the peak)."""
    from monitoring.aggregation import Figures
    from monitoring.models import Bucket

    total = Figures()
    buckets = list(Bucket.objects.filter(line=line, width_s=width_s).order_by("start"))
    for bucket in buckets:
        total.add(bucket)
        total.review_backlog_peak = max(total.review_backlog_peak, bucket.review_backlog_peak)
    total.review_backlog = buckets[-1].review_backlog if buckets else 0
    return total


def now():
    return timezone.now()
