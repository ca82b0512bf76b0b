"""The monitoring job: each line's figures into minute and hour buckets, from the inspection
tables. The one writer of monitoring.Bucket.

Nothing on the station path writes here. Every run recomputes its window from the tables and
replaces the buckets in it (delete and insert, in one transaction), so a rerun gives the same
rows, a decision undone since the last run disappears from its minute, and a restart loses
nothing. Each figure is bucketed by the time of its own event (see Bucket), so an event is
written at about the time it is counted under; the trailing window only has to cover what is
written or withdrawn a little later: a commit a few seconds late, a human decision undone within
the undo window, an overdue item routed by route_overdue_inspections. The cursor covers the
rest: after an outage the next run starts where the last one ended.
"""

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from inspection.decisions import undo_window
from inspection.escapes import final_escapes
from inspection.models import (
    DecidedBy,
    Decision,
    Inspection,
    InspectionStatus,
    Outcome,
    Prediction,
    PredictionRole,
    ReviewItem,
    ReviewState,
)
from inspection.services import OFFLINE_STATIONS
from monitoring import histograms
from monitoring.models import AggregationCursor, Bucket, Width

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TRAILING = timedelta(minutes=5)
# minute buckets feed the views up to a day; hour buckets are kept
MINUTE_RETENTION = timedelta(days=3)
# a long backfill or a catch-up after an outage works in slices of this, one transaction each
CHUNK = timedelta(hours=6)
# Routing, the model's answer and the review item come within the latency budget of an item's
# arrival, or from route_overdue_inspections a minute or two later; an item's routed figures are
# looked up among the items received up to this long before the window, through the index on
# received_at, which keeps every run's reads to a few minutes of the tables.
ROUTE_LATE = timedelta(hours=1)
CURSOR = "buckets"

COUNTS = (
    "items",
    "routed",
    "predictions",
    "accepts",
    "rejects",
    "decided_by_model",
    "decided_by_human",
    "decided_by_fail_safe",
    "fail_safes",
    "reviews_decided",
    "unbiased_items",
    "unbiased_agreeing",
    "seen_items",
    "seen_agreeing",
    "escapes",
)
# {key: count} objects that add up key by key; histograms are such objects too
TALLIES = ("station_items", "fail_safe_reasons", "route_latency", "model_latency", "review_wait")
DECIDED_BY = {
    DecidedBy.MODEL: "decided_by_model",
    DecidedBy.HUMAN: "decided_by_human",
    DecidedBy.FAIL_SAFE: "decided_by_fail_safe",
}


def trailing_window() -> timedelta:
    return max(TRAILING, 3 * undo_window())


def floor_to(moment: datetime, width_s: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // width_s * width_s, tz=UTC)


class Figures:
    """One bucket's figures while they are being added up."""

    def __init__(self) -> None:
        for name in COUNTS:
            setattr(self, name, 0)
        for name in TALLIES:
            setattr(self, name, {})
        self.review_backlog = 0
        self.review_backlog_peak = 0

    def tally(self, name: str, key, count: int = 1) -> None:
        values = getattr(self, name)
        values[str(key)] = values.get(str(key), 0) + count

    def add(self, other) -> None:
        """Add a stored bucket's (or another Figures') counts and tallies; backlogs apart."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in TALLIES:
            mine = getattr(self, name)
            # keys are strings already: as stored (JSON), and as tally() writes them
            for key, count in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + count

    def is_empty(self) -> bool:
        return not (
            any(getattr(self, name) for name in COUNTS)
            or any(getattr(self, name) for name in TALLIES)
            or self.review_backlog
            or self.review_backlog_peak
        )

    def bucket(self, *, line_id: int, width_s: int, start: datetime, now: datetime) -> Bucket:
        values = {name: getattr(self, name) for name in COUNTS}
        values.update({name: dict(sorted(getattr(self, name).items())) for name in TALLIES})
        return Bucket(
            line_id=line_id,
            width_s=width_s,
            start=start,
            review_backlog=self.review_backlog,
            review_backlog_peak=self.review_backlog_peak,
            computed_at=now,
            **values,
        )


@dataclass(frozen=True)
class AggregationResult:
    since: datetime
    until: datetime
    minute_buckets: int
    hour_buckets: int
    seconds: float

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "minute_buckets": self.minute_buckets,
            "hour_buckets": self.hour_buckets,
            "seconds": round(self.seconds, 3),
        }


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def _live(prefix: str = "") -> Q:
    """Items of the line's stations: imported history and batch images are not live work."""
    return Q(**{f"{prefix}station__name__in": OFFLINE_STATIONS}) | Q(
        **{f"{prefix}status": InspectionStatus.OFFLINE}
    )


def _minute_figures(start: datetime, end: datetime) -> dict[tuple[int, datetime], Figures]:
    """Every line's figures per minute of [start, end) (both on minute edges)."""
    figures: dict[tuple[int, datetime], Figures] = defaultdict(Figures)

    def at(line_id: int, moment: datetime) -> Figures:
        return figures[line_id, floor_to(moment, Width.MINUTE)]

    received = (
        Inspection.objects.filter(received_at__gte=start, received_at__lt=end)
        .exclude(_live())
        .annotate(minute=Trunc("received_at", "minute"))
        .values_list("line_id", "station_id", "minute")
        .annotate(n=Count("pk"))
    )
    for line_id, station_id, minute, n in received:
        item = at(line_id, minute)
        item.items += n
        item.tally("station_items", station_id, n)

    routed = (
        Inspection.objects.filter(
            received_at__gte=start - ROUTE_LATE, routed_at__gte=start, routed_at__lt=end
        )
        .exclude(_live())
        .values_list("line_id", "routed_at", "received_at", "fail_safe_reason")
    )
    for line_id, routed_at, received_at, reason in routed.iterator(chunk_size=5000):
        item = at(line_id, routed_at)
        item.routed += 1
        item.tally("route_latency", histograms.bin_of(_ms(routed_at - received_at)))
        if reason:
            item.fail_safes += 1
            item.tally("fail_safe_reasons", reason)

    predictions = (
        Prediction.objects.filter(
            role=PredictionRole.PRIMARY,
            inspection__received_at__gte=start - ROUTE_LATE,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(_live("inspection__"))
        .values_list("inspection__line_id", "created_at", "latency_ms")
    )
    for line_id, created_at, latency_ms in predictions.iterator(chunk_size=5000):
        item = at(line_id, created_at)
        item.predictions += 1
        item.tally("model_latency", histograms.bin_of(latency_ms))

    decided = (
        # final_at (indexed) is never before decided_at: the index finds the window's rows
        Decision.objects.filter(final_at__gte=start, decided_at__gte=start, decided_at__lt=end)
        .exclude(_live("inspection__"))
        .annotate(minute=Trunc("decided_at", "minute"))
        .values_list("inspection__line_id", "minute", "outcome", "decided_by")
        .annotate(n=Count("pk"))
    )
    for line_id, minute, outcome, decided_by, n in decided:
        item = at(line_id, minute)
        if outcome == Outcome.REJECT:
            item.rejects += n
        else:
            item.accepts += n
        name = DECIDED_BY.get(decided_by)
        if name:
            setattr(item, name, getattr(item, name) + n)

    reviews = (
        ReviewItem.objects.filter(
            state=ReviewState.DECIDED, decided_at__gte=start, decided_at__lt=end
        )
        .exclude(_live("inspection__"))
        .values_list(
            "inspection__line_id",
            "decided_at",
            "inspection__received_at",
            "shows_model",
            "model_agrees",
        )
    )
    review_closed: dict[tuple[int, datetime], int] = defaultdict(int)
    for line_id, decided_at, received_at, shows_model, agrees in reviews.iterator(chunk_size=5000):
        item = at(line_id, decided_at)
        item.reviews_decided += 1
        review_closed[line_id, floor_to(decided_at, Width.MINUTE)] += 1
        item.tally("review_wait", histograms.bin_of(_ms(decided_at - received_at)))
        if agrees is None:
            continue
        if shows_model:
            item.seen_items += 1
            item.seen_agreeing += agrees
        else:
            item.unbiased_items += 1
            item.unbiased_agreeing += agrees

    escapes = (
        final_escapes()
        .filter(recorded_at__gte=start, recorded_at__lt=end)
        .exclude(_live("inspection__"))
        .annotate(minute=Trunc("recorded_at", "minute"))
        .values_list("line_id", "minute")
        .annotate(n=Count("pk"))
    )
    for line_id, minute, n in escapes:
        at(line_id, minute).escapes += n

    _add_backlog(figures, start, end, review_closed)
    return figures


def _add_backlog(figures, start, end, review_closed) -> None:
    """Open review items at the end of each minute: those open at `start`, plus the ones
    created, less the ones decided, up to that minute. From counts, not a scan per minute."""
    review_items = ReviewItem.objects.exclude(_live("inspection__"))
    open_at_start = dict(
        review_items.filter(created_at__lt=start)
        .filter(Q(state=ReviewState.OPEN) | Q(decided_at__gte=start))
        .values_list("inspection__line_id")
        .annotate(n=Count("pk"))
    )
    opened: dict[tuple[int, datetime], int] = dict(
        (((line_id, minute), n))
        for line_id, minute, n in review_items.filter(
            inspection__received_at__gte=start - ROUTE_LATE,
            created_at__gte=start,
            created_at__lt=end,
        )
        .annotate(minute=Trunc("created_at", "minute"))
        .values_list("inspection__line_id", "minute")
        .annotate(n=Count("pk"))
    )
    lines = set(open_at_start) | {line_id for line_id, _ in opened}
    for line_id in lines:
        backlog = open_at_start.get(line_id, 0)
        minute = start
        while minute < end:
            backlog += opened.get((line_id, minute), 0) - review_closed.get((line_id, minute), 0)
            if backlog > 0:
                item = figures[line_id, minute]
                item.review_backlog = item.review_backlog_peak = backlog
            minute += MINUTE


def _hour_figures(hour_start: datetime, hour_end: datetime, computed_until: datetime):
    """Hour buckets of [hour_start, hour_end) from the stored minute buckets; an hour's backlog
    is its last computed minute's, its peak the largest of its minutes'."""
    figures: dict[tuple[int, datetime], Figures] = defaultdict(Figures)
    minutes = Bucket.objects.filter(
        width_s=Width.MINUTE, start__gte=hour_start, start__lt=hour_end
    ).order_by("start")
    for minute in minutes.iterator(chunk_size=2000):
        hour = figures[minute.line_id, floor_to(minute.start, Width.HOUR)]
        hour.add(minute)
        hour.review_backlog_peak = max(hour.review_backlog_peak, minute.review_backlog_peak)
        last = min(floor_to(minute.start, Width.HOUR) + HOUR, computed_until) - MINUTE
        if minute.start == last:
            hour.review_backlog = minute.review_backlog
    return figures


def _replace(width_s: int, start: datetime, end: datetime, figures, now: datetime) -> int:
    Bucket.objects.filter(width_s=width_s, start__gte=start, start__lt=end).delete()
    rows = [
        item.bucket(line_id=line_id, width_s=width_s, start=moment, now=now)
        for (line_id, moment), item in sorted(figures.items())
        if not item.is_empty()
    ]
    Bucket.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def aggregate_range(*, since: datetime, until: datetime, now: datetime | None = None):
    """Recompute every line's minute buckets over [since, until] (widened to whole minutes)
    and the hour buckets that overlap it. Safe to repeat: a rerun writes the same rows.

    Minutes older than the minute buckets' retention are recomputed whole hours at a time,
    since their hour sums cannot lean on stored minutes any more.
    """
    started = time.monotonic()
    now = now or timezone.now()
    if since < now - MINUTE_RETENTION + HOUR:
        since = floor_to(since, Width.HOUR)
    start = floor_to(since, Width.MINUTE)
    end = floor_to(until, Width.MINUTE) + MINUTE
    minute_rows = hour_rows = 0
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(end, floor_to(chunk_start, Width.HOUR) + CHUNK)
        with transaction.atomic():
            minute_rows += _replace(
                Width.MINUTE, chunk_start, chunk_end, _minute_figures(chunk_start, chunk_end), now
            )
            hour_start = floor_to(chunk_start, Width.HOUR)
            hour_end = floor_to(chunk_end - MINUTE, Width.HOUR) + HOUR
            hour_rows += _replace(
                Width.HOUR, hour_start, hour_end, _hour_figures(hour_start, hour_end, end), now
            )
        chunk_start = chunk_end
    return AggregationResult(
        since=start,
        until=end,
        minute_buckets=minute_rows,
        hour_buckets=hour_rows,
        seconds=time.monotonic() - started,
    )


def _locked_cursor(now: datetime) -> AggregationCursor:
    try:
        with transaction.atomic():
            AggregationCursor.objects.get_or_create(
                name=CURSOR, defaults={"until": now - trailing_window()}
            )
    except IntegrityError:
        pass  # a concurrent first run created it
    return AggregationCursor.objects.select_for_update().get(name=CURSOR)


def aggregate_recent(*, now: datetime | None = None) -> AggregationResult:
    """The periodic job: recompute from where the last run ended, less the trailing window, up
    to now; then drop minute buckets past their retention. A second run at the same time
    waits for the first (the cursor's row lock) and then redoes only the trailing window."""
    now = now or timezone.now()
    with transaction.atomic():
        cursor = _locked_cursor(now)
        result = aggregate_range(since=min(cursor.until, now) - trailing_window(), until=now)
        cursor.until = now
        cursor.save(update_fields=["until"])
    Bucket.objects.filter(width_s=Width.MINUTE, start__lt=now - MINUTE_RETENTION).delete()
    return result
