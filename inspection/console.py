"""The supervisor console's figures and its one rule for changing a line.

Reads: today's counts per line, the model-vs-human agreement evidence (unbiased items apart from
those decided with the model in view; see inspection.evidence) and what a proposed level and
thresholds would have done to it. Write: `change_routing_policy`, which refuses to raise a line
above assist unless the evidence gate passes or the supervisor overrides with a reason.
"""

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import ExtractHour
from django.utils import timezone

from inspection import routing, services
from inspection.errors import LineChangedMeanwhile, LineRuleBroken
from inspection.evidence import AgreementFigures, AgreementItem, Verdict, judge
from inspection.models import (
    AutomationLevel,
    DecidedBy,
    Inspection,
    Line,
    Prediction,
    PredictionRole,
    ReviewItem,
    ReviewState,
)

# How many of the latest unbiased items the gate's bounds and a proposed change's replay are
# measured on: enough for a 97% line to clear a 95% lower bound (about 350 items), recent
# enough to follow the model's current behaviour.
EVIDENCE_WINDOW = 2000

LEVEL_ORDER = [
    AutomationLevel.HUMAN_ONLY,
    AutomationLevel.SHADOW,
    AutomationLevel.ASSIST,
    AutomationLevel.PARTIAL,
    AutomationLevel.FULL,
]


# Today's counts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCounts:
    inspected: int
    decided_by_model: int
    sent_to_review: int
    review_backlog: int
    median_decision_s: float | None
    # decided without seeing the model (shadow, audits, blind samples): the unbiased figure
    agreement_items: int
    agreeing: int
    # decided with the model in view (assist, partial's unsure band): reported apart
    seen_items: int = 0
    seen_agreeing: int = 0

    @property
    def agreement_pct(self) -> float | None:
        return 100 * self.agreeing / self.agreement_items if self.agreement_items else None

    @property
    def seen_agreement_pct(self) -> float | None:
        return 100 * self.seen_agreeing / self.seen_items if self.seen_items else None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A local calendar day (settings.TIME_ZONE) as aware datetimes [start, end)."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return start, end


def day_counts(line: Line, day: date | None = None) -> DayCounts:
    """The line's figures for one local day (today by default).

    inspected, decided_by_model and sent_to_review count the items received that day;
    the backlog is the open review items now, whatever day they arrived; the median time to a
    human decision and the agreement count the review items decided by a human that day, the
    agreement apart for items decided blind (unbiased) and with the model in view (seen).
    """
    start, end = day_bounds(day or timezone.localdate())
    received = _received_live(line, start, end)
    inspections = received.aggregate(
        inspected=Count("pk"),
        decided_by_model=Count("pk", filter=Q(decision__decided_by=DecidedBy.MODEL)),
        sent_to_review=Count("pk", filter=Q(review_item__isnull=False)),
    )
    decided = ReviewItem.objects.filter(
        inspection__line=line,
        state=ReviewState.DECIDED,
        decided_at__gte=start,
        decided_at__lt=end,
    )
    blind, seen = Q(shows_model=False), Q(shows_model=True)
    agreement = decided.aggregate(
        items=Count("pk", filter=blind & Q(model_agrees__isnull=False)),
        agreeing=Count("pk", filter=blind & Q(model_agrees=True)),
        seen_items=Count("pk", filter=seen & Q(model_agrees__isnull=False)),
        seen_agreeing=Count("pk", filter=seen & Q(model_agrees=True)),
    )
    waits = [
        (decided_at - received_at).total_seconds()
        for decided_at, received_at in decided.values_list("decided_at", "inspection__received_at")
    ]
    return DayCounts(
        inspected=inspections["inspected"],
        decided_by_model=inspections["decided_by_model"],
        sent_to_review=inspections["sent_to_review"],
        review_backlog=ReviewItem.objects.filter(
            inspection__line=line, state=ReviewState.OPEN
        ).count(),
        median_decision_s=statistics.median(waits) if waits else None,
        agreement_items=agreement["items"],
        agreeing=agreement["agreeing"],
        seen_items=agreement["seen_items"],
        seen_agreeing=agreement["seen_agreeing"],
    )


# Agreement evidence and the effect of a change ----------------------------------------------


def _agreement_predictions(line: Line, *, seen_model: bool):
    """The primary predictions of the line's active model on items a human then decided,
    blind (seen_model=False: shadow, audits, blind samples) or with the model in view.

    Only the active model's, because another version's agreement is no evidence for this one.
    """
    return Prediction.objects.filter(
        role=PredictionRole.PRIMARY,
        model_version_id=line.active_model_id,
        inspection__line=line,
        inspection__review_item__state=ReviewState.DECIDED,
        inspection__review_item__model_agrees__isnull=False,
        inspection__review_item__shows_model=seen_model,
    )


def count_agreement_items(line: Line, *, seen_model: bool = False) -> int:
    if line.active_model_id is None:
        return 0
    return _agreement_predictions(line, seen_model=seen_model).count()


def latest_agreement_items(
    line: Line, limit: int = EVIDENCE_WINDOW, *, seen_model: bool = False
) -> list[AgreementItem]:
    if line.active_model_id is None:
        return []
    rows = (
        _agreement_predictions(line, seen_model=seen_model)
        .order_by("-inspection__review_item__decided_at", "-pk")
        .values_list(
            "defect_probability",
            "inspection__review_item__decision",
            "inspection__review_item__model_agrees",
        )[:limit]
    )
    return [AgreementItem(p, decision, agrees) for p, decision, agrees in rows]


@dataclass(frozen=True)
class Evidence:
    """The active model's agreement evidence on a line: unbiased and seen-the-model apart.

    `items` are the latest unbiased items (at most EVIDENCE_WINDOW): the figures, bounds and
    the replay of a proposed change are measured on them; the totals count every item.
    """

    items: list[AgreementItem]
    unbiased_total: int
    unbiased: AgreementFigures
    seen_total: int
    seen: AgreementFigures
    verdict: Verdict

    @property
    def rows(self) -> list[tuple[str, int, AgreementFigures]]:
        return [
            ("unbiased", self.unbiased_total, self.unbiased),
            ("seen", self.seen_total, self.seen),
        ]


def line_evidence(line: Line) -> Evidence:
    items = latest_agreement_items(line)
    unbiased = AgreementFigures.of(items)
    unbiased_total = count_agreement_items(line)
    return Evidence(
        items=items,
        unbiased_total=unbiased_total,
        unbiased=unbiased,
        seen_total=count_agreement_items(line, seen_model=True),
        seen=AgreementFigures.of(latest_agreement_items(line, seen_model=True)),
        verdict=judge(
            figures=unbiased,
            total=unbiased_total,
            minimum=settings.LOUPE_MIN_AGREEMENT_ITEMS,
            agreement_target=line.agreement_target,
            escape_rate_limit=line.escape_rate_limit,
        ),
    )


@dataclass(frozen=True)
class Effect:
    """What a level and thresholds would have done with a set of agreement items."""

    total: int
    auto_decided: int
    disagreements: int

    @property
    def auto_decided_pct(self) -> float | None:
        return 100 * self.auto_decided / self.total if self.total else None

    @property
    def to_review(self) -> int:
        return self.total - self.auto_decided


def effect_of(
    items: list[AgreementItem], *, level: str, accept_threshold: float, reject_threshold: float
) -> Effect:
    """Replay the items through the level's routing rule: how many the model would have
    decided alone, and how many of those decisions differ from the human's.

    At full level every item is the model's (its audit sample is reviewed but still decided by
    the model); below partial none is.
    """
    policy = routing.RoutingPolicy(
        level=level,
        accept_threshold=accept_threshold,
        reject_threshold=reject_threshold,
        audit_fraction=0.0,
    )
    auto_decided = disagreements = 0
    for item in items:
        outcome = routing.route_with_model(policy, item.defect_probability, audit_key="").outcome
        if outcome is not None:
            auto_decided += 1
            disagreements += outcome != item.human_decision
    return Effect(total=len(items), auto_decided=auto_decided, disagreements=disagreements)


# The minimum of evidence to raise a level -----------------------------------------------------


def needs_minimum(old_level: str, new_level: str) -> bool:
    """Raising a line to partial or full lets the model decide: that needs evidence."""
    new_rank = LEVEL_ORDER.index(new_level)
    return new_rank > LEVEL_ORDER.index(old_level) and new_rank > LEVEL_ORDER.index(
        AutomationLevel.ASSIST
    )


def verdict_at(line: Line, evidence: Evidence, reject_threshold: float) -> Verdict:
    """The gate's verdict were the model to reject from `reject_threshold`.

    The stored agreement of each item was taken at the threshold of its day; a change that
    raises the level and the reject threshold together must not pass on figures the new
    threshold would not give, so each unbiased item is replayed from its probability."""
    if reject_threshold == line.reject_threshold:
        return evidence.verdict
    items = [
        AgreementItem(
            item.defect_probability,
            item.human_decision,
            routing.model_outcome(item.defect_probability, reject_threshold) == item.human_decision,
        )
        for item in evidence.items
    ]
    return judge(
        figures=AgreementFigures.of(items),
        total=evidence.unbiased_total,
        minimum=settings.LOUPE_MIN_AGREEMENT_ITEMS,
        agreement_target=line.agreement_target,
        escape_rate_limit=line.escape_rate_limit,
    )


def minimum_shortfall(
    line: Line, new_level: str, evidence: Evidence, reject_threshold: float | None = None
) -> str | None:
    """Why the raise is refused without an override (each rule the evidence fails at the
    proposed reject threshold, by default the line's), or None when it is not a raise above
    assist or the evidence passes the gate."""
    if not needs_minimum(line.automation_level, new_level):
        return None
    verdict = verdict_at(
        line, evidence, line.reject_threshold if reject_threshold is None else reject_threshold
    )
    if verdict.passed:
        return None
    failed = "; ".join(f"{rule.needs} (this line: {rule.has})" for rule in verdict.failed)
    return (
        f"Raising to {AutomationLevel(new_level).label} needs unbiased evidence of the active "
        f"model: {failed}."
    )


def line_version(line: Line) -> str:
    """Changes with any change of the line: a confirmation shown for an older version is stale."""
    return line.updated_at.isoformat()


@transaction.atomic
def change_routing_policy(
    *,
    line: Line,
    level: str,
    accept_threshold: float,
    reject_threshold: float,
    changed_by: str,
    reason: str = "",
    override: bool = False,
    expected_version: str | None = None,
) -> list[tuple[str, str, str]]:
    """Set the line's level and thresholds together; return the (field, from, to) changed.

    Raises LineRuleBroken when raising to partial or full while the unbiased evidence fails the
    gate (inspection.evidence: the minimum of items, the agreement's lower bound, the miss
    rate's upper bound), unless `override` is given with a written reason (the reason then goes
    to the audit log marked as an override, with the rules it overrides). Raises InvalidInput
    on a bad level or thresholds. Changes nothing on error; repeating it changes nothing more.
    expected_version: the line_version the supervisor's confirmation was shown for; checked
    under the row lock, so of two supervisors confirming at once the second is refused
    (LineChangedMeanwhile) instead of overwriting a change they never saw.
    """
    services.validate_level(level)
    line = Line.objects.select_for_update().get(pk=line.pk)
    if expected_version is not None and line_version(line) != expected_version:
        raise LineChangedMeanwhile("the line changed after this confirmation was shown")
    reason = reason.strip()
    shortfall = minimum_shortfall(line, level, line_evidence(line), reject_threshold)
    if shortfall:
        if not (override and reason):
            raise LineRuleBroken(f"{shortfall} Override with a written reason to go ahead.")
        reason = f"Override: {shortfall} {reason}"
    before = {
        "automation_level": line.automation_level,
        "accept_threshold": line.accept_threshold,
        "reject_threshold": line.reject_threshold,
    }
    services.set_line_thresholds(
        line=line,
        accept_threshold=accept_threshold,
        reject_threshold=reject_threshold,
        changed_by=changed_by,
        reason=reason,
    )
    line = services.set_line_level(line=line, level=level, changed_by=changed_by, reason=reason)
    return [
        (field, str(old), str(getattr(line, field)))
        for field, old in before.items()
        if getattr(line, field) != old
    ]


def _received_live(line: Line, start, end):
    """Items the line's stations posted in [start, end); imported history is not that day's
    work, though its rows are created then."""
    return Inspection.objects.filter(
        line=line, received_at__gte=start, received_at__lt=end
    ).exclude(station__name__in=services.OFFLINE_STATIONS)


def hourly_inspected(line: Line, day: date | None = None) -> list[int]:
    """Items received in each local hour of the day (24 values; a sparkline's data)."""
    start, end = day_bounds(day or timezone.localdate())
    counts = [0] * 24
    rows = (
        _received_live(line, start, end)
        .annotate(hour=ExtractHour("received_at"))
        .values("hour")
        .annotate(n=Count("pk"))
        .values_list("hour", "n")
    )
    for hour, n in rows:
        counts[hour] += n
    return counts


def level_effect(level: str, accept_threshold: float, reject_threshold: float, audit: float) -> str:
    """What a level means for the station and the inspectors, in one sentence."""
    if level == AutomationLevel.HUMAN_ONLY:
        return "Every item goes to a human; the model is not asked."
    if level == AutomationLevel.SHADOW:
        return "The model predicts on every item without showing it; every item goes to a human."
    if level == AutomationLevel.ASSIST:
        return (
            "Every item goes to a human, who sees the model's regions and score, except a blind "
            f"sample of {audit * 100:g}% shown without them."
        )
    if level == AutomationLevel.PARTIAL:
        return (
            f"The model accepts when p(defect) ≤ {accept_threshold} and rejects when "
            f"p(defect) ≥ {reject_threshold}; the items in between go to a human. An audit "
            f"sample of {audit * 100:g}% of the model's decisions also goes to a human, and as "
            "many of the items in between are shown without the model (blind)."
        )
    return (
        f"The model decides every item (reject when p(defect) ≥ {reject_threshold}, else "
        f"accept); an audit sample of {audit * 100:g}% also goes to a human."
    )
