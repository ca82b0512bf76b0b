"""What each alert rule watches, its defaults, and how its figure is measured now.

A rule is (metric, threshold, window, min_items, enabled), one per metric per line. What the
three numbers mean depends on the metric (METRICS, shown on the rules page). Each measurement
reads figures other modules own: drift checks (monitoring.drift), concept-drift windows
(monitoring.concept: the same windows, reference and verdict as the page), buckets
(monitoring.aggregation), and the inspection tables for what must be current (the review
backlog, the oldest item waiting for its prediction: read from the database, so it works
whatever the broker).

Defaults, and why:
- data drift: 1 drifted check (each check is already Holm-corrected over its tests and runs
  on 50 new items, so one is evidence; 2 would wait 50 more items per station); a verdict
  older than 60 min says nothing about now and leaves an open alert as it is.
- disagreement drift: concept.judge on the last 100 unbiased items (intervals apart from the
  reference's), at least 50 of them; threshold 0% adds no floor of its own.
- miss-rate drift: the same on the last 100: a longer window holds more defective items but
  waits twice as long for a new defect type's misses to outweigh the old ones.
- escapes: 3 found in 60 min, and more than the model's reference miss rate makes likely at
  the audits of those minutes (binomial tail below ESCAPE_BURST_ALPHA). One now and then is
  what a model with a non-zero miss rate does: 3 an hour is routine for a 2% miss rate at 150
  audits an hour. The rate is the drift rule's, a burst is this one's.
- fail-safe rate: 1% of 50+ routed items over 15 min (monitoring.thresholds' line).
- review backlog: 250 open items, about an hour's work for one inspector.
- oldest open review item: 30 min.
- station silent: nothing for 10 min after 20+ items in the hour before. At a shift's end
  every station stops together, so it counts only while another station of the line still
  posts, or when the station posted in the same minutes yesterday (a one-camera line).
- oldest item waiting for its prediction: 120 s. route_overdue gives a stuck item its
  fail-safe within a minute or so, so an older one means the workers or that job are down.
- challenger rolled back: 1 rollback by the rollout gate (monitoring.rollout_gate) in the last
  60 min; the gate evaluates the line at once, so the alert opens with the rollback, and it
  resolves itself an hour later. A person's rollback raises none: they know.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Min, Sum
from scipy import stats

from inspection.decisions import undo_window
from inspection.escapes import final_escapes
from inspection.models import (
    DecidedBy,
    Inspection,
    InspectionStatus,
    Line,
    Outcome,
    ReviewItem,
    ReviewReason,
    ReviewState,
    Rollout,
    RolloutState,
    Station,
)
from inspection.services import OFFLINE_STATIONS, log_line_event
from loupe.common.errors import InvalidInput
from monitoring import concept, thresholds
from monitoring.line_settings import reference_since
from monitoring.models import AlertMetric, AlertRule, Bucket, DriftCheck, DriftVerdict, Width

M = AlertMetric
ESCAPE_BURST_ALPHA = 0.01
ROLLOUT_GATE = "monitoring"  # who a rollback by monitoring.rollout_gate names


@dataclass(frozen=True)
class MetricSpec:
    threshold: float
    window: int
    min_items: int
    threshold_means: str
    window_means: str
    min_items_means: str
    per_station: bool = False
    enabled: bool = True


METRICS: dict[str, MetricSpec] = {
    M.DATA_DRIFT: MetricSpec(
        1, 60, 50, "drifted checks in a row", "a verdict counts for (min)", "items per check", True
    ),
    M.DISAGREEMENT_DRIFT: MetricSpec(
        0, 100, 50, "and disagreement at least (%)", "latest unbiased items", "items at least"
    ),
    M.ESCAPE_RATE_DRIFT: MetricSpec(
        0, 100, 50, "and miss rate at least (%)", "latest unbiased items", "items at least"
    ),
    M.ESCAPES: MetricSpec(3, 60, 0, "escapes at least", "within (min)", "unused"),
    M.FAIL_SAFE_RATE: MetricSpec(
        thresholds.FAIL_SAFE_PCT, 15, 50, "fail-safe share (%)", "within (min)", "items"
    ),
    M.REVIEW_BACKLOG: MetricSpec(
        thresholds.REVIEW_BACKLOG, 0, 0, "open review items", "unused", "unused"
    ),
    M.REVIEW_WAIT: MetricSpec(30, 0, 0, "oldest open item's age (min)", "unused", "unused"),
    M.STATION_SILENT: MetricSpec(
        10, 60, 20, "silent for (min)", "posted in the (min) before", "items at least", True
    ),
    M.PREDICTION_QUEUE_AGE: MetricSpec(
        120, 0, 0, "oldest waiting item's age (s)", "unused", "unused"
    ),
    M.ROLLOUT_ROLLED_BACK: MetricSpec(
        1, 60, 0, "gate rollbacks at least", "within (min)", "unused"
    ),
}
# alerts that say the model is wrong more often: they step the line back (monitoring.step_back)
MODEL_WRONG = (M.DISAGREEMENT_DRIFT, M.ESCAPE_RATE_DRIFT, M.ESCAPES)


def ensure_default_rules(line: Line) -> list[AlertRule]:
    """The line's rules, each missing one created with its default. Safe to repeat and to
    call concurrently; never changes a rule a supervisor edited."""
    existing = {rule.metric: rule for rule in AlertRule.objects.filter(line=line)}
    for metric, spec in METRICS.items():
        if metric in existing:
            continue
        try:
            with transaction.atomic():
                existing[metric] = AlertRule.objects.create(
                    line=line,
                    metric=metric,
                    threshold=spec.threshold,
                    window=spec.window,
                    min_items=spec.min_items,
                    enabled=spec.enabled,
                )
        except IntegrityError:  # created meanwhile
            existing[metric] = AlertRule.objects.get(line=line, metric=metric)
    return [existing[metric] for metric in METRICS]


def rules_for(line: Line) -> list[AlertRule]:
    """The line's rules in METRICS' order, a missing one as its unsaved default: for pages,
    which never write (the evaluation and the first edit create them)."""
    existing = {rule.metric: rule for rule in AlertRule.objects.filter(line=line)}
    return [
        existing.get(metric)
        or AlertRule(
            line=line,
            metric=metric,
            threshold=spec.threshold,
            window=spec.window,
            min_items=spec.min_items,
            enabled=spec.enabled,
        )
        for metric, spec in METRICS.items()
    ]


@dataclass(frozen=True)
class Finding:
    """A rule's figure now. firing None: too little to judge, an open alert stays as it is."""

    firing: bool | None
    value: float | None = None
    message: str = ""
    station: Station | None = None


def live_stations(line: Line) -> list[Station]:
    return list(
        Station.objects.filter(line=line, is_enabled=True)
        .exclude(name__in=OFFLINE_STATIONS)
        .order_by("pk")
    )


def _data_drift(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    if line.active_model_id is None:
        return []
    since = reference_since(line)
    findings = []
    for station in live_stations(line):
        checks = DriftCheck.objects.filter(
            station=station, model_version_id=line.active_model_id, items__gte=rule.min_items
        ).exclude(verdict=DriftVerdict.TOO_FEW_ITEMS)
        if since is not None:
            checks = checks.filter(window_start__gte=since)
        needed = max(1, int(rule.threshold))
        latest = list(checks.order_by("-checked_at", "-pk")[:needed])
        if not latest or latest[0].checked_at < now - timedelta(minutes=rule.window):
            findings.append(Finding(None, station=station))
            continue
        drifted = [c.verdict != DriftVerdict.OK for c in latest]
        run = next((i for i, d in enumerate(drifted) if not d), len(drifted))
        firing = True if run >= needed else (False if run == 0 else None)
        check = latest[0]
        auc = check.results.get("tests", {}).get("embedding", {}).get("auc")
        message = (
            f"{station.name}: {check.get_verdict_display().lower()} in its last {run} check(s)"
            f" ({check.items} items to {check.window_end:%H:%M}"
            + (f", embedding AUC {auc:.2f}" if isinstance(auc, float) else "")
            + ")"
        )
        findings.append(Finding(firing, run, message, station))
    return findings


def _concept(rule: AlertRule, line: Line, now: datetime, name: str, label: str) -> list[Finding]:
    judged = concept.latest_window(line, size=rule.window, min_items=rule.min_items, now=now)
    if judged is None or judged[0].verdict == concept.TOO_FEW:
        return [Finding(None)]
    window, reference = judged
    rate = getattr(window, name)
    pct = 100 * (rate.rate or 0.0)
    low, high = rate.interval
    reference_high = getattr(reference, name).interval[1]
    figures = (
        f"{label} {pct:.1f}% (95% {100 * low:.1f}–{100 * high:.1f}%) over the last "
        f"{window.items} unbiased items; the model's first {reference.items}: up to "
        f"{100 * reference_high:.1f}%"
    )
    if name in window.reasons and pct >= rule.threshold:
        return [Finding(True, round(pct, 2), figures)]
    # cleared only once the rate itself is back within the reference's interval: a window
    # hovering at the edge would otherwise resolve and reopen, stepping the line back again
    if (rate.rate or 0.0) > reference_high:
        return [Finding(None)]
    return [Finding(False, round(pct, 2), figures)]


def _audited_accepts(line: Line, since: datetime, now: datetime) -> int:
    """Model accepts a human audited, with the audit final, in the window."""
    return ReviewItem.objects.filter(
        inspection__line=line,
        reason=ReviewReason.AUDIT,
        state=ReviewState.DECIDED,
        decided_at__gte=since,
        decided_at__lte=now - undo_window(),
        inspection__decision__decided_by=DecidedBy.MODEL,
        inspection__decision__outcome=Outcome.ACCEPT,
    ).count()


def escape_burst_p(found: int, audited_accepts: int, reference) -> float | None:
    """How likely `found` or more escapes are among `audited_accepts` audited model accepts
    if the model still missed as often as in its reference (the share of the reference's
    unbiased accepts that were defective, Jeffreys-smoothed so a reference without a miss
    still expects a few); None without a reference. A reported escape counts as one more
    accept checked. Pure."""
    figures = reference.tally.unbiased if reference is not None else None
    if figures is None or figures.items < concept.MIN_ITEMS:
        return None
    accepts = figures.agreeing - figures.defective + 2 * figures.missed
    rate = (figures.missed + 0.5) / (accepts + 1)
    return float(stats.binom.sf(found - 1, max(audited_accepts, found), rate))


def _escapes(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    since = now - timedelta(minutes=rule.window)
    count = final_escapes(now).filter(line=line, recorded_at__gte=since).count()
    message = f"{count} escape(s) found in the last {rule.window} min"
    if count < rule.threshold:
        return [Finding(False, count, message)]
    # a burst is more escapes than the model's own miss rate gives at this many audits: the
    # same count is news at 20 audits an hour and noise at 500
    audited = _audited_accepts(line, since, now)
    p = escape_burst_p(count, audited, concept.reference_window(line, now))
    if p is None:
        return [Finding(True, count, message)]
    message += f" among {audited} audited accepts (p = {p:.4f} at the model's reference rate)"
    return [Finding(p < ESCAPE_BURST_ALPHA, count, message)]


def _fail_safe_rate(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    sums = Bucket.objects.filter(
        line=line, width_s=Width.MINUTE, start__gte=now - timedelta(minutes=rule.window)
    ).aggregate(routed=Sum("routed"), fail_safes=Sum("fail_safes"))
    routed = sums["routed"] or 0
    if routed < max(1, rule.min_items):
        return [Finding(None)]
    pct = 100 * (sums["fail_safes"] or 0) / routed
    message = f"{pct:.1f}% of {routed} items routed by the fail-safe in {rule.window} min"
    return [Finding(pct >= rule.threshold, round(pct, 2), message)]


def _open_reviews(line: Line):
    return ReviewItem.objects.filter(inspection__line=line, state=ReviewState.OPEN)


def _review_backlog(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    count = _open_reviews(line).count()
    message = f"{count} open review item{'s' if count != 1 else ''}"
    return [Finding(count >= rule.threshold, count, message)]


def _review_wait(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    oldest = _open_reviews(line).aggregate(oldest=Min("created_at"))["oldest"]
    minutes = 0.0 if oldest is None else (now - oldest).total_seconds() / 60
    message = f"the oldest open review item has waited {minutes:.0f} min"
    return [Finding(minutes >= rule.threshold, round(minutes, 1), message)]


def _station_silent(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    silence = timedelta(minutes=rule.threshold)
    quiet_since = now - silence
    stations = live_stations(line)
    items = Inspection.objects.filter(line=line)
    posting = set(
        items.filter(received_at__gte=quiet_since, station__in=stations)
        .values_list("station_id", flat=True)
        .distinct()
    )
    findings = []
    for station in stations:
        if station.pk in posting:
            findings.append(Finding(False, 0, station=station))
            continue
        ours = items.filter(station=station)
        before = ours.filter(
            received_at__gte=quiet_since - timedelta(minutes=rule.window),
            received_at__lt=quiet_since,
        ).count()
        day_ago = now - timedelta(days=1)
        line_runs = (
            bool(posting)
            or ours.filter(received_at__gte=day_ago - silence, received_at__lt=day_ago).exists()
        )
        if before < max(1, rule.min_items) or not line_runs:
            # it was not busy, or the whole line stopped (a shift's end): nothing to say
            findings.append(Finding(None, station=station))
            continue
        last = ours.order_by("-received_at").values_list("received_at", flat=True).first()
        minutes = (now - last).total_seconds() / 60
        message = f"{station.name} sent nothing for {minutes:.0f} min after {before} items"
        findings.append(Finding(True, round(minutes, 1), message, station))
    return findings


def _prediction_queue_age(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    oldest = Inspection.objects.filter(line=line, status=InspectionStatus.RECEIVED).aggregate(
        oldest=Min("received_at")
    )["oldest"]
    seconds = 0.0 if oldest is None else (now - oldest).total_seconds()
    message = f"the oldest item waiting for its prediction has waited {seconds:.0f} s"
    return [Finding(seconds >= rule.threshold, round(seconds, 1), message)]


def _rollout_rolled_back(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    rolled_back = Rollout.objects.filter(
        line=line, state=RolloutState.ROLLED_BACK, ended_by=ROLLOUT_GATE,
        ended_at__gte=now - timedelta(minutes=rule.window),
    ).select_related("challenger").order_by("-ended_at")  # fmt: skip
    count = len(rolled_back)
    if count == 0:
        return [Finding(False, 0, f"no challenger rolled back in {rule.window} min")]
    latest = rolled_back[0]
    message = f"challenger {latest.challenger.name} rolled back: {latest.ended_reason}"
    return [Finding(count >= rule.threshold, count, message)]


MEASURES = {
    M.DATA_DRIFT: _data_drift,
    M.DISAGREEMENT_DRIFT: lambda r, li, n: _concept(r, li, n, "disagreement", "disagreement"),
    M.ESCAPE_RATE_DRIFT: lambda r, li, n: _concept(r, li, n, "escape", "miss rate"),
    M.ESCAPES: _escapes,
    M.FAIL_SAFE_RATE: _fail_safe_rate,
    M.REVIEW_BACKLOG: _review_backlog,
    M.REVIEW_WAIT: _review_wait,
    M.STATION_SILENT: _station_silent,
    M.PREDICTION_QUEUE_AGE: _prediction_queue_age,
    M.ROLLOUT_ROLLED_BACK: _rollout_rolled_back,
}


def measure(rule: AlertRule, line: Line, now: datetime) -> list[Finding]:
    """The rule's findings now: one, or one per live station for a per-station rule."""
    return MEASURES[rule.metric](rule, line, now)


def validate_rule_values(metric: str, threshold, window, min_items) -> None:
    """Raises InvalidInput on a value a rule cannot hold."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown alert metric {metric!r}")
    if not isinstance(threshold, float | int) or not 0 <= threshold <= 1_000_000:
        raise InvalidInput(f"{metric}: the threshold must be a number within 0..1000000")
    for name, value in (("window", window), ("min items", min_items)):
        if not isinstance(value, int) or not 0 <= value <= 100_000:
            raise InvalidInput(f"{metric}: the {name} must be a whole number within 0..100000")
    if metric in (M.DISAGREEMENT_DRIFT, M.ESCAPE_RATE_DRIFT) and not 10 <= window <= 5000:
        raise InvalidInput(f"{metric}: the window must be 10..5000 items")
    if metric in (M.ESCAPES, M.FAIL_SAFE_RATE, M.STATION_SILENT, M.DATA_DRIFT) and window < 1:
        raise InvalidInput(f"{metric}: the window must be at least 1 minute")


@transaction.atomic
def update_alert_rules(*, line: Line, values: dict[str, dict], changed_by: str) -> list[str]:
    """Change the line's rules: `values` maps a metric to any of threshold, window, min_items,
    enabled. Every value is checked before anything is stored (raises InvalidInput, changing
    nothing); each changed field goes to the audit log. Returns "metric.field" changed."""
    rules = {rule.metric: rule for rule in ensure_default_rules(line)}
    for metric, fields in values.items():
        unknown = set(fields) - {"threshold", "window", "min_items", "enabled"}
        if metric not in rules or unknown:
            raise InvalidInput(f"unknown alert rule or field: {metric} {sorted(unknown)}")
        rule = rules[metric]
        validate_rule_values(
            metric,
            fields.get("threshold", rule.threshold),
            fields.get("window", rule.window),
            fields.get("min_items", rule.min_items),
        )
    changed = []
    for metric, fields in values.items():
        rule = rules[metric]
        dirty = [name for name, value in fields.items() if getattr(rule, name) != value]
        for name in dirty:
            log_line_event(
                line=line,
                field=f"alert_rule.{metric}.{name}"[:50],
                old=getattr(rule, name),
                new=fields[name],
                changed_by=changed_by,
            )
            setattr(rule, name, fields[name])
            changed.append(f"{metric}.{name}")
        if dirty:
            rule.save(update_fields=[*dirty, "updated_at"])
    return changed
