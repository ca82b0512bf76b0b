"""Escapes: defective items the model accepted. The one writer of Escape rows.

Two ways one is found: an audit (a human deciding, without seeing the model, an item the model
decided) rejects an item the model accepted; or a supervisor records one found later, a
customer return or a failed downstream test, by the item's serial (Inspection.external_id).
Escapes are counted per line and model version on the line page, and the labeling queue takes
them as its first items. The evidence gate's miss rate (inspection.evidence) is a separate
figure: it is measured on every unbiased item, which a reported escape is not.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from inspection.decisions import undo_window
from inspection.errors import NotAModelAccept, SerialAmbiguous, SerialNotFound
from inspection.models import (
    DecidedBy,
    Decision,
    Escape,
    EscapeSource,
    Inspection,
    Line,
    Outcome,
    ReviewItem,
    ReviewReason,
    Station,
)
from inspection.services import OFFLINE_STATIONS
from loupe.common.errors import InvalidInput


def _model_accept(inspection_id: int) -> Decision | None:
    return Decision.objects.filter(
        inspection_id=inspection_id, decided_by=DecidedBy.MODEL, outcome=Outcome.ACCEPT
    ).first()


@transaction.atomic
def record_audit_escape(*, review_item: ReviewItem, inspector) -> Escape | None:
    """Mark an escape when an audit's reject sits on the model's accept; return it, or None
    when the item is no escape (not an audit, not a reject, or the model rejected it).

    review.services calls it in the transaction of the audit's decision. Safe to repeat: an
    item already marked (by an earlier audit or a report) keeps its one row.
    """
    if review_item.reason != ReviewReason.AUDIT or review_item.decision != Outcome.REJECT:
        return None
    decision = _model_accept(review_item.inspection_id)
    if decision is None:
        return None
    escape, _created = Escape.objects.get_or_create(
        inspection_id=review_item.inspection_id,
        defaults={
            "line_id": Inspection.objects.values_list("line_id", flat=True).get(
                pk=review_item.inspection_id
            ),
            "model_version_id": decision.model_version_id,
            "source": EscapeSource.AUDIT,
            "recorded_by": inspector,
            "recorded_at": timezone.now(),
        },
    )
    return escape


def withdraw_audit_escape(*, inspection_id: int) -> None:
    """The audit's reject was undone within its window: its escape goes with it. A reported
    escape of the same item stays."""
    Escape.objects.filter(inspection_id=inspection_id, source=EscapeSource.AUDIT).delete()


def inspections_by_serial(*, line: Line, serial: str) -> QuerySet[Inspection]:
    """The line's live items of that serial, one per station that inspected it (imports and
    batch images stand for no product on the line)."""
    return (
        Inspection.objects.filter(line=line, external_id=serial)
        .exclude(station__name__in=OFFLINE_STATIONS)
        .select_related("station")
        .order_by("station__name")
    )


@transaction.atomic
def record_reported_escape(
    *, line: Line, serial: str, note: str, user, station: Station | None = None
) -> tuple[Escape, bool]:
    """Record an escape found after the line (a customer return, a failed downstream test) on
    the item of `serial`; return (escape, created).

    `station` picks the item when several stations of the line share the serial. Raises
    InvalidInput (no serial, no note, a station of another line), SerialNotFound,
    SerialAmbiguous (its `stations` are the candidates) or NotAModelAccept (a human or the
    fail-safe decided the item, or the model rejected it), changing nothing. Safe to repeat:
    an item already marked returns its escape with created=False.
    """
    serial, note = serial.strip(), note.strip()
    if not serial:
        raise InvalidInput("give the item's serial", field="serial")
    if not note:
        raise InvalidInput("say what was found (a customer return, a failed test…)", field="note")
    if station is not None and station.line_id != line.pk:
        raise InvalidInput(f"station {station.name!r} is not on line {line.name}", field="station")
    matches = inspections_by_serial(line=line, serial=serial)
    if station is not None:
        matches = matches.filter(station=station)
    found = list(matches[:50])
    where = f" on station {station.name}" if station is not None else ""
    if not found:
        raise SerialNotFound(
            f"no item of line {line.name} has the serial {serial!r}{where}", field="serial"
        )
    if len(found) > 1:
        names = ", ".join(item.station.name for item in found)
        raise SerialAmbiguous(
            f"stations {names} each inspected an item {serial!r}: pick the station",
            stations=[item.station for item in found],
        )
    inspection = found[0]
    existing = Escape.objects.filter(inspection=inspection).first()
    if existing is not None:
        return existing, False
    decision = Decision.objects.filter(inspection=inspection).first()
    if decision is None or decision.decided_by != DecidedBy.MODEL:
        by = "nobody yet" if decision is None else decision.get_decided_by_display().lower()
        raise NotAModelAccept(
            f"item {serial!r} of {inspection.station.name} was decided by {by}, not the model: "
            "an escape is an item the model accepted",
            field="serial",
        )
    if decision.outcome != Outcome.ACCEPT:
        raise NotAModelAccept(
            f"the model rejected item {serial!r} of {inspection.station.name}", field="serial"
        )
    escape = Escape.objects.create(
        inspection=inspection,
        line=line,
        model_version_id=decision.model_version_id,
        source=EscapeSource.REPORTED,
        recorded_by=user,
        note=note[:2000],
        recorded_at=timezone.now(),
    )
    return escape, True


# Counts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscapeCount:
    model_version: str | None
    audit: int
    reported: int

    @property
    def total(self) -> int:
        return self.audit + self.reported


def final_escapes(now=None) -> QuerySet[Escape]:
    """Escapes that can no longer be taken back: every reported one, and an audit's once its
    reject is past the undo window. Pages, the labeling queue and the monitoring figures show
    only these: an audit escape seen earlier would tell its inspector the model disagreed
    while they could still undo."""
    settled = (now or timezone.now()) - undo_window()
    return Escape.objects.filter(Q(source=EscapeSource.REPORTED) | Q(recorded_at__lte=settled))


def escape_counts(line: Line) -> list[EscapeCount]:
    """The line's escapes per model version that accepted them, the newest version first."""
    rows = (
        final_escapes()
        .filter(line=line)
        .values("model_version_id", "model_version__name")
        .annotate(
            audit=Count("pk", filter=Q(source=EscapeSource.AUDIT)),
            reported=Count("pk", filter=Q(source=EscapeSource.REPORTED)),
        )
        .order_by("-model_version_id")
    )
    return [EscapeCount(row["model_version__name"], row["audit"], row["reported"]) for row in rows]


def latest_escapes(line: Line, limit: int = 20) -> QuerySet[Escape]:
    return (
        final_escapes()
        .filter(line=line)
        .select_related("inspection__station", "model_version", "recorded_by")[:limit]
    )
