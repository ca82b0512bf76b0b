"""A station's POST from image to answer: receive, send to a worker, wait up to the budget.

Above services and tasks: it stores the item (services), enqueues and waits for the
prediction (tasks), and applies the fail-safe when the budget runs out (decisions).
"""

import time

from django.utils import timezone

from inspection import decisions, selectors, services, tasks
from inspection.images import ValidatedImage
from inspection.models import (
    FailSafeReason,
    Inspection,
    InspectionStatus,
    PredictionRole,
    Station,
)
from loupe.common import metrics


def submit_inspection(
    *,
    station: Station,
    external_id: str,
    image: ValidatedImage,
    metadata: dict,
    started: float | None = None,
) -> tuple[Inspection, bool]:
    """The station's POST: receive, have a worker predict, wait up to the line's budget.

    Returns (inspection, created) with the inspection routed: decided by the model, sent to
    review, or given the fail-safe when the budget ran out. A retry returns the first
    inspection and starts nothing. `started` (time.perf_counter) is when the request arrived,
    for the receive figure; without it, receiving is timed from here.
    """
    started = time.perf_counter() if started is None else started
    inspection, created = services.receive_inspection(
        station=station,
        external_id=external_id,
        image=image,
        metadata=metadata,
        on_created=lambda item: tasks.enqueue_prediction(
            item.pk, line=station.line.name, station=station.name
        ),
    )
    received_s = time.perf_counter() - started
    # A retry that arrives while the first request still waits, waits out the same budget;
    # either way no item stays unrouted past its deadline.
    if inspection.status == InspectionStatus.RECEIVED:
        remaining = (decisions.budget_deadline(inspection) - timezone.now()).total_seconds()
        tasks.wait_for_prediction(inspection.pk, timeout_s=max(remaining, 0.0))
        inspection.refresh_from_db(fields=["status"])
        if inspection.status == InspectionStatus.RECEIVED:
            decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
    answered = selectors.inspection_with_answer(inspection.pk)
    _record_answer(station, answered, created=created, received_s=received_s)
    return answered, created


def answering_model(inspection: Inspection) -> str:
    """The model version whose output the answer rests on: the one that routed the item, else
    the one whose prediction came too late; empty when no model answered."""
    if inspection.model_version is not None:
        return inspection.model_version.name
    for prediction in inspection.predictions.all():  # prefetched with the answer
        if prediction.role == PredictionRole.PRIMARY:
            return prediction.model_version.name
    return ""


@metrics.never_raises
def _record_answer(station: Station, inspection: Inspection, *, created: bool, received_s) -> None:
    decision = getattr(inspection, "decision", None)
    final = decision is not None and decision.is_final()
    metrics.record_answer(
        line=station.line.name,
        station=station.name,
        model_version=answering_model(inspection),
        outcome=decision.outcome if final else "review",
        decided_by=decision.decided_by if final else "none",
        fail_safe_reason=inspection.fail_safe_reason,
        created=created,
        received_s=received_s,
    )


@metrics.never_raises
def record_request_time(*, station: Station, inspection: Inspection, started: float) -> None:
    """The total figure of a new item's request: from `started` (time.perf_counter) to now."""
    metrics.record_request_seconds(
        line=station.line.name,
        station=station.name,
        model_version=answering_model(inspection),
        seconds=time.perf_counter() - started,
    )
