"""A station's POST from image to answer: receive, send to a worker, wait up to the budget.

Above services and tasks: it stores the item (services), enqueues and waits for the
prediction (tasks), and applies the fail-safe when the budget runs out (decisions).
"""

from django.utils import timezone

from inspection import decisions, selectors, services, tasks
from inspection.images import ValidatedImage
from inspection.models import FailSafeReason, Inspection, InspectionStatus, Station


def submit_inspection(
    *, station: Station, external_id: str, image: ValidatedImage, metadata: dict
) -> tuple[Inspection, bool]:
    """The station's POST: receive, have a worker predict, wait up to the line's budget.

    Returns (inspection, created) with the inspection routed: decided by the model, sent to
    review, or given the fail-safe when the budget ran out. A retry returns the first
    inspection and starts nothing.
    """
    inspection, created = services.receive_inspection(
        station=station,
        external_id=external_id,
        image=image,
        metadata=metadata,
        on_created=lambda item: tasks.enqueue_prediction(item.pk),
    )
    # A retry that arrives while the first request still waits, waits out the same budget;
    # either way no item stays unrouted past its deadline.
    if inspection.status == InspectionStatus.RECEIVED:
        remaining = (decisions.budget_deadline(inspection) - timezone.now()).total_seconds()
        tasks.wait_for_prediction(inspection.pk, timeout_s=max(remaining, 0.0))
        inspection.refresh_from_db(fields=["status"])
        if inspection.status == InspectionStatus.RECEIVED:
            decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
    return selectors.inspection_with_answer(inspection.pk), created
