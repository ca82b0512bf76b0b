"""Concept drift: is the model still right, judged on the items a human checked?

Data drift (monitoring.drift) sees the images change; it cannot see the right answer change (a
new defect type on images that look as before). Only a human's decision can, so this module
measures, per line and for the active model, over windows of human-checked items whose decision
is final (past the undo window: inside it a disagreement could still be taken back):

- disagreement: the share of unbiased items (decided without seeing the model: shadow, audits,
  blind samples) where the human's decision differs from the model's; the same among every
  human-checked item (the model seen too: assist, partial's unsure band) is shown apart and
  never judged, because a human who sees the model agrees more whatever the model is worth;
- escape rate: the model's miss rate as inspection.evidence defines it (the share of defective
  unbiased items, those the human rejected, that the model would have accepted);

each with a two-sided Wilson 95% interval (loupe.common.stats).

The rule (`judge`): a window shows concept drift when it has at least MIN_ITEMS unbiased items
and, for disagreement or for the escape rate, Fisher's exact test (scipy.stats, one-sided) says
its count is higher than the reference's with p below DRIFT_ALPHA. The reference is the active
model's first REFERENCE_ITEMS final unbiased items on the line: the model as it was judged when
it started. The exact test weighs the reference's own noise (it is a sample too) and needs
less than asking two 95% intervals not to overlap (this module's first rule): against 4 of the
reference's 200, it calls 9 of the latest 100 drift where the intervals waited for 10, and 8
of 100 is p 0.017, so a new defect type must add about 5 misses per 100 checked items to be
seen within them. With few defective items the escape test has little power and stays
silent: honest, since few defects say little about misses. The page shows the intervals.

Beside them, CBPE (NannyML's confidence-based performance estimation): if the model's
probability is calibrated, an item it rejects at p is right with chance p, and one it accepts
at p is right with chance 1 - p; the expected agreement of a window is the mean of these. It
needs no label, so it tracks performance under data drift, but it assumes the right answer did
not change: under concept drift realized agreement falls below it while the estimate stays put,
which is what the page shows side by side. Its interval is where the realized agreement of
that many items falls 95% of the time if the probabilities are calibrated (a sum of
independent Bernoulli draws: variance sum p(1 - p)). The training in ml.engine calibrates no
probability (only the map's pixel threshold) and the artifact carries no calibration map, so
the estimate uses the raw probabilities; a gap between estimate and realized agreement on the
reference items measures that miscalibration, and the page shows the reference row for that.
The page also shows the estimate on the model's latest items, checked by a human or not: the
figure CBPE is for, where no label will come.
"""

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.db.models import Case, Count, F, FloatField, Q, Sum, Value, When
from django.utils import timezone
from scipy import stats

from inspection import routing
from inspection.decisions import undo_window
from inspection.evidence import AgreementFigures, AgreementItem
from inspection.models import Line, Outcome, Prediction, PredictionRole, ReviewState
from loupe.common.stats import Z_95, wilson_interval
from monitoring.line_settings import reference_since

WINDOW_SIZES = (100, 200)  # the latest N final unbiased items
REFERENCE_ITEMS = 200
MIN_ITEMS = 50
DRIFT_ALPHA = 0.01
CHART_WINDOW = 100  # the chart's rolling windows: this many unbiased items...
CHART_STEP = 50  # ...one window every this many
CHART_ITEMS = 2000  # over the latest this many
# the page's range counts at most this many latest checked items: a 30-day range of a busy line
# holds a million (10 stations at 2 items/s, 2% audited), whose aggregate alone takes about a
# second; the latest 5,000 (an interval about +-0.6% wide at 2% disagreement) read through the
# decided_at index take about 40 ms (measured on 300,000 checked items)
SPAN_LIMIT = 5_000
ESTIMATE_ITEMS = 2000  # CBPE on the model's latest items, checked by a human or not


@dataclass(frozen=True)
class CheckedItem:
    """One item the active model judged and a human then decided, finally."""

    defect_probability: float
    reject_threshold: float  # the item's own, as routed
    human_decision: str
    model_agrees: bool
    unbiased: bool  # the human did not see the model
    decided_at: datetime | None = None

    @property
    def model_outcome(self) -> str:
        return routing.model_outcome(self.defect_probability, self.reject_threshold)

    @property
    def p_correct(self) -> float:
        """The chance the model is right, if its probability is calibrated."""
        p = self.defect_probability
        return p if self.model_outcome == Outcome.REJECT else 1.0 - p

    def as_evidence(self) -> AgreementItem:
        return AgreementItem(self.defect_probability, self.human_decision, self.model_agrees)


@dataclass(frozen=True)
class Rate:
    """count of n, with its two-sided Wilson 95% interval."""

    count: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.count / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.count, self.n, Z_95)

    def as_dict(self) -> dict:
        low, high = self.interval
        rate = self.rate
        return {
            "count": self.count,
            "n": self.n,
            "pct": None if rate is None else round(100 * rate, 2),
            "low_pct": round(100 * low, 2),
            "high_pct": round(100 * high, 2),
        }


@dataclass(frozen=True)
class Estimate:
    """CBPE's expected agreement over n items: the mean of p_correct, with the 95% range of
    the realized agreement under calibration."""

    n: int
    p_sum: float = 0.0
    variance_sum: float = 0.0  # sum of p(1 - p)

    @classmethod
    def of(cls, p_correct: list[float]) -> "Estimate":
        return cls(len(p_correct), sum(p_correct), sum(p * (1 - p) for p in p_correct))

    @property
    def expected(self) -> float | None:
        return self.p_sum / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        if not self.n:
            return 0.0, 1.0
        half = Z_95 * math.sqrt(self.variance_sum) / self.n
        return max(0.0, self.p_sum / self.n - half), min(1.0, self.p_sum / self.n + half)

    def as_dict(self) -> dict:
        low, high = self.interval
        expected = self.expected
        return {
            "n": self.n,
            "pct": None if expected is None else round(100 * expected, 2),
            "low_pct": round(100 * low, 2),
            "high_pct": round(100 * high, 2),
        }


@dataclass(frozen=True)
class Tally:
    """The counts a window's figures come from: from items (pure) or a database aggregate."""

    unbiased: AgreementFigures
    all_items: int
    all_agreeing: int
    estimate: Estimate

    @classmethod
    def of(cls, unbiased: list[CheckedItem], every: list[CheckedItem] | None = None) -> "Tally":
        """`unbiased` must all be unbiased; `every` (default: `unbiased`) is the window of
        every human-checked item, the model seen or not."""
        every = unbiased if every is None else every
        return cls(
            unbiased=AgreementFigures.of([item.as_evidence() for item in unbiased]),
            all_items=len(every),
            all_agreeing=sum(item.model_agrees for item in every),
            estimate=Estimate.of([item.p_correct for item in unbiased]),
        )


@dataclass(frozen=True)
class Window:
    label: str
    tally: Tally
    start: datetime | None = None
    end: datetime | None = None
    verdict: str = ""
    reasons: tuple[str, ...] = field(default=())

    @property
    def items(self) -> int:
        return self.tally.unbiased.items

    @property
    def disagreement(self) -> Rate:
        figures = self.tally.unbiased
        return Rate(figures.items - figures.agreeing, figures.items)

    @property
    def disagreement_all(self) -> Rate:
        return Rate(self.tally.all_items - self.tally.all_agreeing, self.tally.all_items)

    @property
    def escape(self) -> Rate:
        figures = self.tally.unbiased
        return Rate(figures.missed, figures.defective)

    @property
    def realized_agreement(self) -> Rate:
        return Rate(self.tally.unbiased.agreeing, self.tally.unbiased.items)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "items": self.items,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "disagreement": self.disagreement.as_dict(),
            "disagreement_all": self.disagreement_all.as_dict(),
            "escape": self.escape.as_dict(),
            "realized_agreement": self.realized_agreement.as_dict(),
            "estimated_agreement": self.tally.estimate.as_dict(),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }


OK, DRIFT, TOO_FEW = "ok", "concept_drift", "too_few_items"


def higher_than(ours: Rate, theirs: Rate) -> float:
    """p of Fisher's exact test that `ours` is a higher rate than `theirs`. Pure."""
    table = [[ours.count, ours.n - ours.count], [theirs.count, theirs.n - theirs.count]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def judge(window: Window, reference: Window | None, *, min_items: int = MIN_ITEMS) -> Window:
    """The window with its verdict: see the module's rule."""
    if reference is None or reference.items < min_items or window.items < min_items:
        return replace(window, verdict=TOO_FEW, reasons=())
    reasons = []
    for name in ("disagreement", "escape"):
        ours, theirs = getattr(window, name), getattr(reference, name)
        if ours.n and theirs.n and higher_than(ours, theirs) < DRIFT_ALPHA:
            reasons.append(name)
    return replace(window, verdict=DRIFT if reasons else OK, reasons=tuple(reasons))


def window_of(label: str, unbiased: list[CheckedItem], every=None) -> Window:
    """A window of items in any order; its start and end are their decision times."""
    times = [item.decided_at for item in unbiased if item.decided_at is not None]
    return Window(
        label,
        Tally.of(unbiased, every),
        start=min(times) if times else None,
        end=max(times) if times else None,
    )


def rolling_windows(
    unbiased: list[CheckedItem], *, size: int = CHART_WINDOW, step: int = CHART_STEP
) -> list[Window]:
    """Windows of `size` consecutive items, one every `step`, the newest ending at the last
    item; `unbiased` is oldest first. Fewer items than `size`: one window of them all."""
    if len(unbiased) <= size:
        return [window_of(f"last {len(unbiased)}", unbiased)] if unbiased else []
    ends = range(len(unbiased), size - 1, -step)
    return [window_of(f"items {end - size + 1}–{end}", unbiased[end - size : end]) for end in ends][
        ::-1
    ]


# From the database ---------------------------------------------------------------------------


def _checked(line: Line, settled: datetime, since: datetime | None):
    """The active model's primary predictions on items a human decided finally, since the
    line's reference reset if it had one (`since`: the reference then is the first items
    after it)."""
    rows = Prediction.objects.filter(
        role=PredictionRole.PRIMARY,
        model_version_id=line.active_model_id,
        inspection__line=line,
        inspection__review_item__state=ReviewState.DECIDED,
        inspection__review_item__model_agrees__isnull=False,
        inspection__review_item__decided_at__lte=settled,
    )
    if since is not None:
        rows = rows.filter(inspection__review_item__decided_at__gte=since)
    return rows


NEWEST = ("-inspection__review_item__decided_at", "-pk")
_FIELDS = (
    "defect_probability",
    "inspection__reject_threshold",
    "inspection__review_item__decision",
    "inspection__review_item__model_agrees",
    "inspection__review_item__shows_model",
    "inspection__review_item__decided_at",
)


def _items(queryset) -> list[CheckedItem]:
    return [
        CheckedItem(p, threshold, decision, agrees, not seen, decided_at)
        for p, threshold, decision, agrees, seen, decided_at in queryset.values_list(*_FIELDS)
    ]


def _p_correct_expression():
    p = F("defect_probability")
    return Case(
        When(defect_probability__gte=F("inspection__reject_threshold"), then=p),
        default=Value(1.0) - p,
        output_field=FloatField(),
    )


def _span_tally(
    line: Line,
    start: datetime,
    settled: datetime,
    since: datetime | None = None,
    limit: int = SPAN_LIMIT,
) -> Tally:
    """A time window's counts (of its latest `limit` checked items) in one aggregate query."""
    latest = (
        _checked(line, settled, since)
        .filter(inspection__review_item__decided_at__gte=start)
        .order_by(*NEWEST)
        .values("pk")[:limit]
    )
    base = Prediction.objects.filter(pk__in=latest)
    blind = Q(inspection__review_item__shows_model=False)
    agrees = Q(inspection__review_item__model_agrees=True)
    rejected = Q(inspection__review_item__decision=Outcome.REJECT)
    p_correct = _p_correct_expression()
    row = base.annotate(p_correct=p_correct).aggregate(
        items=Count("pk", filter=blind),
        agreeing=Count("pk", filter=blind & agrees),
        defective=Count("pk", filter=blind & rejected),
        missed=Count("pk", filter=blind & rejected & ~agrees),
        all_items=Count("pk"),
        all_agreeing=Count("pk", filter=agrees),
        p_sum=Sum("p_correct", filter=blind),
        variance_sum=Sum(F("p_correct") * (Value(1.0) - F("p_correct")), filter=blind),
    )
    return Tally(
        unbiased=AgreementFigures(
            items=row["items"],
            agreeing=row["agreeing"],
            defective=row["defective"],
            missed=row["missed"],
        ),
        all_items=row["all_items"],
        all_agreeing=row["all_agreeing"],
        estimate=Estimate(row["items"], row["p_sum"] or 0.0, row["variance_sum"] or 0.0),
    )


def estimate_latest(line: Line, limit: int = ESTIMATE_ITEMS) -> Estimate:
    """CBPE on the active model's latest `limit` predictions on the line, whether a human
    checked them or not: what it is for, an estimate where no label will come."""
    rows = (
        Prediction.objects.filter(
            role=PredictionRole.PRIMARY,
            model_version_id=line.active_model_id,
            inspection__line=line,
        )
        .order_by("-pk")
        .values_list("defect_probability", "inspection__reject_threshold")[:limit]
    )
    return Estimate.of(
        [p if routing.model_outcome(p, t) == Outcome.REJECT else 1.0 - p for p, t in rows]
    )


def _blind(line: Line, now: datetime):
    return _checked(line, now - undo_window(), reference_since(line)).filter(
        inspection__review_item__shows_model=False
    )


def _reference(blind) -> Window:
    items = _items(blind.order_by("inspection__review_item__decided_at", "pk")[:REFERENCE_ITEMS])
    return window_of(f"reference: first {len(items)}", items)


def reference_window(line: Line, now: datetime | None = None) -> Window | None:
    """The active model's reference (its first final unbiased items); None without a model."""
    if line.active_model_id is None:
        return None
    return _reference(_blind(line, now or timezone.now()))


def latest_window(
    line: Line, *, size: int, min_items: int = MIN_ITEMS, now: datetime | None = None
) -> tuple[Window, Window] | None:
    """The latest `size` final unbiased items of the active model judged against its
    reference as the page judges its windows, and that reference (the alerts' figures);
    None without an active model."""
    if line.active_model_id is None:
        return None
    now = now or timezone.now()
    blind = _blind(line, now)
    reference = _reference(blind)
    latest = _items(blind.order_by(*NEWEST)[:size])
    return judge(window_of(f"last {size}", latest), reference, min_items=min_items), reference


def concept_summary(
    line: Line, *, span: timedelta, span_label: str, now: datetime | None = None
) -> dict:
    """The monitoring page's concept-drift section: the reference, the latest count windows
    and the page's time range with their verdicts, and the chart's rolling windows."""
    if line.active_model_id is None:
        return {"active_model": False, "windows": [], "chart": {"windows": []}}
    now = now or timezone.now()
    settled = now - undo_window()
    since = reference_since(line)
    checked = _checked(line, settled, since)
    blind = checked.filter(inspection__review_item__shows_model=False)
    reference_items = _items(
        blind.order_by("inspection__review_item__decided_at", "pk")[:REFERENCE_ITEMS]
    )
    reference = window_of(f"reference: first {len(reference_items)}", reference_items)
    latest = _items(blind.order_by(*NEWEST)[: max(CHART_ITEMS, *WINDOW_SIZES)])[::-1]
    latest_all = _items(checked.order_by(*NEWEST)[: max(WINDOW_SIZES)])[::-1]
    windows = [
        judge(window_of(f"last {size}", latest[-size:], latest_all[-size:]), reference)
        for size in WINDOW_SIZES
    ]
    span_tally = _span_tally(line, now - span, settled, since)
    if span_tally.all_items >= SPAN_LIMIT:
        span_label = f"{span_label} (latest {SPAN_LIMIT:,} checked items)"
    windows.append(judge(Window(span_label, span_tally, now - span, settled), reference))
    chart = [judge(window, reference) for window in rolling_windows(latest)]
    return {
        "active_model": True,
        "reference": reference.as_dict(),
        "windows": [window.as_dict() for window in windows],
        "drifting": [window.label for window in windows if window.verdict == DRIFT],
        "estimate_latest": estimate_latest(line).as_dict(),
        "settled": settled,
        "policy": {"min_items": MIN_ITEMS, "reference_items": REFERENCE_ITEMS},
        "chart": {
            "reference": reference.as_dict(),
            "windows": [window.as_dict() for window in chart],
            "window": CHART_WINDOW,
            "step": CHART_STEP,
        },
    }
