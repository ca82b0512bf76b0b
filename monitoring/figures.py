"""A line's monitoring figures over a range (the last hour, shift, day or 30 days), read from
the buckets and grouped into the points of its charts and table.

The caller has already checked the line is visible to the user (inspection.selectors).
Counts add up; latency percentiles come from the summed histogram bins of each point
(monitoring.histograms); the review backlog of a point is the peak of its minutes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.utils import timezone

from inspection.models import Line, ReviewItem, ReviewState
from inspection.services import OFFLINE_STATIONS
from monitoring import histograms
from monitoring.aggregation import COUNTS, TALLIES, Figures, floor_to
from monitoring.models import AggregationCursor, Bucket, Width
from monitoring.thresholds import Thresholds, thresholds_for


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    step: timedelta  # one point of the charts, one row of the table
    width_s: int  # the buckets it reads
    time_format: str


RANGES = {
    r.key: r
    for r in (
        Range("hour", "Last hour", timedelta(hours=1), timedelta(minutes=1), Width.MINUTE, "%H:%M"),
        Range(
            "shift", "Shift (8 h)", timedelta(hours=8), timedelta(minutes=10), Width.MINUTE, "%H:%M"
        ),
        Range("day", "Day (24 h)", timedelta(days=1), timedelta(minutes=15), Width.MINUTE, "%H:%M"),
        Range("30d", "30 days", timedelta(days=30), timedelta(hours=6), Width.HOUR, "%m-%d %H:%M"),
    )
}
DEFAULT_RANGE = "day"
QUANTILES = (0.5, 0.95, 0.99)


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Point(Figures):
    """The figures of one point (or of the whole range), with what the page shows of them."""

    def __init__(self, start: datetime, minutes: float) -> None:
        super().__init__()
        self.start = start
        self.minutes = minutes

    @property
    def items_per_min(self) -> float:
        return round(self.items / self.minutes, 2) if self.minutes else 0.0

    @property
    def reject_pct(self) -> float | None:
        return _pct(self.rejects, self.accepts + self.rejects)

    @property
    def fail_safe_pct(self) -> float | None:
        return _pct(self.fail_safes, self.routed)

    @cached_property
    def latency_ms(self) -> list[float | None]:
        return [_round(histograms.percentile(self.route_latency, q)) for q in QUANTILES]

    @cached_property
    def model_ms(self) -> list[float | None]:
        return [_round(histograms.percentile(self.model_latency, q)) for q in QUANTILES]

    @cached_property
    def median_wait_s(self) -> float | None:
        wait = histograms.percentile(self.review_wait, 0.5)
        return None if wait is None else round(wait / 1000, 1)

    @property
    def unbiased_pct(self) -> float | None:
        return _pct(self.unbiased_agreeing, self.unbiased_items)

    @property
    def seen_pct(self) -> float | None:
        return _pct(self.seen_agreeing, self.seen_items)


@dataclass(frozen=True)
class LineFigures:
    range: Range
    start: datetime
    end: datetime
    points: list[Point]
    total: Point
    backlog_now: int
    thresholds: Thresholds
    aggregated_until: datetime | None
    labels: list[str]

    def chart_data(self) -> dict:
        """What static/js/monitoring.js draws: one list per series, a label per point."""
        points = self.points
        latency = [p.latency_ms for p in points]
        model = [p.model_ms for p in points]
        return {
            "range": self.range.key,
            "labels": self.labels,
            "series": {
                "items_per_min": [p.items_per_min for p in points],
                "p50_ms": [row[0] for row in latency],
                "p95_ms": [row[1] for row in latency],
                "p99_ms": [row[2] for row in latency],
                "model_p95_ms": [row[1] for row in model],
                "reject_pct": [p.reject_pct for p in points],
                "fail_safe_pct": [p.fail_safe_pct for p in points],
                "review_backlog": [p.review_backlog_peak for p in points],
                "unbiased_pct": [p.unbiased_pct for p in points],
                "seen_pct": [p.seen_pct for p in points],
                "escapes": [p.escapes for p in points],
            },
            "thresholds": self.thresholds.as_dict(),
        }


def line_figures(*, line: Line, range_key: str, now: datetime | None = None) -> LineFigures:
    """Raises KeyError for a range that is not in RANGES."""
    span = RANGES[range_key]
    now = now or timezone.now()
    step_s = int(span.step.total_seconds())
    end = floor_to(now, step_s) + span.step
    start = end - span.span
    count = int(span.span / span.step)
    points = []
    for index in range(count):
        point_start = start + index * span.step
        elapsed = min(span.step, max(now - point_start, timedelta(minutes=1)))
        points.append(Point(point_start, elapsed.total_seconds() / 60))
    total = Point(start, min(span.span, now - start).total_seconds() / 60)
    fields = ("start", "review_backlog_peak", *COUNTS, *TALLIES)
    rows = (
        Bucket.objects.filter(line=line, width_s=span.width_s, start__gte=start, start__lt=end)
        .order_by("start")
        .values_list(*fields)
    )
    for row in rows:
        bucket = _Row(fields, row)
        point = points[int((bucket.start - start) / span.step)]
        point.add(bucket)
        point.review_backlog_peak = max(point.review_backlog_peak, bucket.review_backlog_peak)
    for point in points:
        total.add(point)
        total.review_backlog_peak = max(total.review_backlog_peak, point.review_backlog_peak)
    cursor = AggregationCursor.objects.filter().values_list("until", flat=True).first()
    return LineFigures(
        range=span,
        start=start,
        end=end,
        points=points,
        total=total,
        backlog_now=ReviewItem.objects.filter(inspection__line=line, state=ReviewState.OPEN)
        .exclude(inspection__station__name__in=OFFLINE_STATIONS)
        .count(),
        thresholds=thresholds_for(line, now),
        aggregated_until=cursor,
        labels=[timezone.localtime(p.start).strftime(span.time_format) for p in points],
    )


class _Row:
    """A values_list row with attribute access, for Figures.add (cheaper than model rows)."""

    def __init__(self, fields, values) -> None:
        self.__dict__.update(zip(fields, values, strict=True))
