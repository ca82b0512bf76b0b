"""The one owner of an inspection's decision and status.

Every Decision row, and every change of Inspection.status after it arrived, is written here:
routing by the model or the fail-safe, a human's decision from the review queue and its undo,
items routed late by a dead process, and items imported already decided. The review queue and
dataset imports call these functions; nothing else writes those rows.

A decision is final at its `final_at`: at once for the model, the fail-safe and imports, at
the end of the undo window for a human. Until then it may be undone and a station is told the
item is still in review; after it, labels and counts may rely on it.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inspection import routing
from inspection.errors import DecisionFinal
from inspection.models import (
    AutomationLevel,
    DecidedBy,
    Decision,
    FailSafeReason,
    Inspection,
    InspectionStatus,
    ReviewItem,
    Station,
)

logger = logging.getLogger(__name__)

# past its deadline by this much, an unrouted item has no request left waiting for it
OVERDUE_GRACE = timedelta(seconds=30)


def undo_window() -> timedelta:
    """How long an inspector may take back their own decision (LOUPE_UNDO_WINDOW_S)."""
    return timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S)


def routing_policy_of(inspection: Inspection) -> routing.RoutingPolicy:
    """The rules the item is routed by: the line's, as copied onto it when it arrived."""
    return routing.RoutingPolicy(
        level=inspection.automation_level,
        accept_threshold=inspection.accept_threshold,
        reject_threshold=inspection.reject_threshold,
        fail_safe_action=inspection.fail_safe_action,
        audit_fraction=inspection.audit_fraction,
    )


def budget_deadline(inspection: Inspection) -> datetime:
    return inspection.received_at + timedelta(milliseconds=inspection.latency_budget_ms)


# Routing: the model, the fail-safe --------------------------------------------------------


@transaction.atomic
def record_route(
    inspection: Inspection,
    route: routing.Route,
    *,
    model_version=None,
    decided_by: str = DecidedBy.MODEL,
    fail_safe_reason: str = FailSafeReason.NONE,
) -> bool:
    """Route a received item exactly once; return False when another path routed it first.

    The conditional UPDATE is the claim (only one worker, retry or fail-safe wins), and the
    one-to-one Decision is the database's guarantee of a single final decision. A routed
    decision is final at once: only a human's can be undone.
    """
    now = timezone.now()
    status = InspectionStatus.DECIDED if route.outcome else InspectionStatus.IN_REVIEW
    won = Inspection.objects.filter(pk=inspection.pk, status=InspectionStatus.RECEIVED).update(
        status=status, model_version=model_version, fail_safe_reason=fail_safe_reason, routed_at=now
    )
    if won != 1:
        return False
    if route.outcome:
        Decision.objects.create(
            inspection_id=inspection.pk,
            outcome=route.outcome,
            decided_by=decided_by,
            model_version=model_version if decided_by == DecidedBy.MODEL else None,
            decided_at=now,
            final_at=now,
        )
    if route.review_reason:
        ReviewItem.objects.create(
            inspection_id=inspection.pk, reason=route.review_reason, shows_model=route.shows_model
        )
    return True


def apply_fail_safe(*, inspection: Inspection, reason: str) -> bool:
    """Apply the line's fail-safe (review, or reject) unless the item was routed already."""
    route = routing.route_fail_safe(routing_policy_of(inspection))
    won = record_route(inspection, route, decided_by=DecidedBy.FAIL_SAFE, fail_safe_reason=reason)
    if won:
        logger.warning("inspection %s: fail-safe applied (%s)", inspection.pk, reason)
    return won


def route_overdue_inspections(*, now: datetime | None = None) -> int:
    """Give the fail-safe to items still unrouted well past their budget; return how many.

    The POST that stored an item routes it by its deadline; if that process died between
    storing the image and sending the task (or while waiting), nothing else would, and the
    item would sit unseen. Its model answer, if one comes, is still recorded as late.
    """
    now = now or timezone.now()
    routed = 0
    # received_at bounds the scan; each item's own budget decides
    stale = Inspection.objects.filter(
        status=InspectionStatus.RECEIVED, received_at__lt=now - OVERDUE_GRACE
    )
    for inspection in stale.order_by("pk").iterator():
        if budget_deadline(inspection) + OVERDUE_GRACE < now:
            routed += apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
    return routed


# Humans -------------------------------------------------------------------------------------


@transaction.atomic
def record_human_decision(
    *, inspection_id: int, outcome: str, inspector, decided_at: datetime
) -> Decision:
    """Make an inspector's decision the inspection's final one, undoable until its final_at.

    The caller (the review queue) has already won the item; the one-to-one Decision still
    refuses a second decision with an IntegrityError, whatever the timing.
    """
    decision = Decision.objects.create(
        inspection_id=inspection_id,
        outcome=outcome,
        decided_by=DecidedBy.HUMAN,
        inspector=inspector,
        decided_at=decided_at,
        final_at=decided_at + undo_window(),
    )
    Inspection.objects.filter(pk=inspection_id, status=InspectionStatus.IN_REVIEW).update(
        status=InspectionStatus.DECIDED
    )
    return decision


@transaction.atomic
def undo_human_decision(*, inspection_id: int, inspector, now: datetime | None = None) -> None:
    """Take back the inspector's own decision before it became final; the item is in review
    again. Raises DecisionFinal when there is no such decision or its window has passed."""
    now = now or timezone.now()
    deleted, _ = Decision.objects.filter(
        inspection_id=inspection_id,
        decided_by=DecidedBy.HUMAN,
        inspector=inspector,
        final_at__gte=now,
    ).delete()
    if not deleted:
        raise DecisionFinal(f"the decision on inspection {inspection_id} is final")
    Inspection.objects.filter(pk=inspection_id, status=InspectionStatus.DECIDED).update(
        status=InspectionStatus.IN_REVIEW
    )


# Imports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedItem:
    """One image of an archive, already stored, with the outcome its labels give."""

    external_id: str
    image_name: str
    sha256: str
    image_format: str
    width: int
    height: int
    outcome: str
    metadata: dict = field(default_factory=dict)


def record_imported_inspections(
    *, station: Station, items: Sequence[ImportedItem], inspector, routing_policy: dict
) -> list[Inspection]:
    """Create inspections that arrive decided: labeled history, not live items.

    Decided by a human (the importing user, vouching for the archive's labels) under the
    human_only level, final at once: there is nothing to undo. `routing_policy` is the line's rules
    (inspection.services.routing_policy_snapshot) recorded on each item. Bulk, in the caller's
    transaction; the unique (station, external_id) refuses an item imported twice.
    """
    now = timezone.now()
    inspections = Inspection.objects.bulk_create(
        [
            Inspection(
                station=station,
                line_id=station.line_id,
                external_id=item.external_id,
                metadata=item.metadata,
                image=item.image_name,
                image_sha256=item.sha256,
                image_format=item.image_format,
                width=item.width,
                height=item.height,
                received_at=now,
                status=InspectionStatus.DECIDED,
                **{**routing_policy, "automation_level": AutomationLevel.HUMAN_ONLY},
                routed_at=now,
            )
            for item in items
        ]
    )
    Decision.objects.bulk_create(
        Decision(
            inspection=inspection,
            outcome=item.outcome,
            decided_by=DecidedBy.HUMAN,
            inspector=inspector,
            decided_at=now,
            final_at=now,
        )
        for inspection, item in zip(inspections, items, strict=True)
    )
    return inspections
