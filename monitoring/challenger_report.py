"""A rollout's side-by-side report: the active model against its challenger, on what humans
decided (issue 12, point 2; read when asked, nothing stored).

- A mirror rollout has both models on the same items: their agreement with each other, and
  McNemar's exact test on the human-checked items where exactly one of them was right (a
  binomial test of the discordant pairs, scipy.stats), which is the paired comparison.
- A canary or blue-green rollout splits the items: each model is judged on the items it
  answered, chiefly the audits of its automatic decisions; the active model also on its
  human-checked items of the BASELINE_DAYS before the rollout (`active_before`), which the
  gate adds to the rollout's: at a 2% audit the incumbent's own share of a canary's items holds
  too few checked ones to tell a bad challenger from it quickly.

Per model: items predicted; human-checked items (a human's decision in review: shadow, audit,
blind sample, review) and how many were unbiased (the model hidden); agreement with the human;
escape rate (defective items, by the human, that the model would have accepted, over the
defective ones) and false-reject rate (good items it would have rejected, over the good ones),
each as count of n with a Wilson 95% interval (monitoring.concept.Rate); latency p50 and p99,
each with its distribution-free 95% interval (`quantile`);
the artifact's size on disk (what a worker holds for it, within a few percent: the weights);
and per defect class, the escape rate over the defective items whose labels (the latest
revision, labeling.selectors.latest_revisions) name that class: an audit's accept or reject
names none, so this counts only the items someone labeled with boxes.

`rollout_steps` is the chart's: each step's share, when its first and last items arrived, and
how many items each model answered at it.
"""

from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
from django.db.models import Count, Max, Min, Q
from scipy import stats

from inspection import routing
from inspection.models import (
    Inspection,
    Outcome,
    Prediction,
    PredictionRole,
    Rollout,
    RolloutMode,
)
from labeling.selectors import latest_revisions
from monitoring.concept import Rate

# a canary's incumbent is judged on its human-checked items during the rollout and in the days
# before it (`active_before`): at a 2% audit the rollout's own weeks of items hold a handful
BASELINE_DAYS = 7


@dataclass(frozen=True)
class Judged:
    """One model's output on one item, with the human's decision when there is one."""

    inspection_id: int
    defect_probability: float
    reject_threshold: float
    latency_ms: float
    human: str  # accept, reject, or "" while no human decided
    unbiased: bool
    classes: tuple[str, ...] = ()  # the defect classes its labels name, where labeled

    @property
    def outcome(self) -> str:
        return routing.model_outcome(self.defect_probability, self.reject_threshold)

    @property
    def right(self) -> bool:
        return self.outcome == self.human


def model_figures(judged: list[Judged]) -> dict:
    """The figures of one model over its items. Pure."""
    checked = [j for j in judged if j.human]
    defective = [j for j in checked if j.human == Outcome.REJECT]
    good = [j for j in checked if j.human == Outcome.ACCEPT]
    latencies = [j.latency_ms for j in judged]
    return {
        "items": len(judged),
        "checked": len(checked),
        "unbiased": sum(j.unbiased for j in checked),
        "agreement": Rate(sum(j.right for j in checked), len(checked)).as_dict(),
        "escape": Rate(
            sum(j.outcome == Outcome.ACCEPT for j in defective), len(defective)
        ).as_dict(),
        "false_reject": Rate(sum(j.outcome == Outcome.REJECT for j in good), len(good)).as_dict(),
        "per_class": {
            name: Rate(
                sum(j.outcome == Outcome.ACCEPT for j in defective if name in j.classes),
                sum(name in j.classes for j in defective),
            ).as_dict()
            for name in sorted({name for j in defective for name in j.classes})
        },
        "latency_ms": {"p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99)},
    }


def quantile(values: list[float], q: float) -> dict | None:
    """The q-quantile of the values with its distribution-free 95% interval: the order
    statistics whose ranks the binomial(n, q) distribution puts 2.5% below and above (scipy).
    An end of the interval is None where n is too small to reach it. Pure."""
    if not values:
        return None
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    low_rank = int(stats.binom.ppf(0.025, n, q))  # P(count below) >= 2.5%: the low order stat
    high_rank = int(stats.binom.ppf(0.975, n, q)) + 1
    return {
        "value": round(float(np.quantile(ordered, q)), 2),
        "low": round(float(ordered[low_rank - 1]), 2) if low_rank >= 1 else None,
        "high": round(float(ordered[high_rank - 1]), 2) if high_rank <= n else None,
        "n": n,
    }


def paired_figures(active: list[Judged], challenger: list[Judged]) -> dict:
    """Agreement between the two models on the items both judged, and McNemar's exact test on
    the human-checked ones: `active_only_right` and `challenger_only_right` are the discordant
    pairs; p is two-sided (1.0 without any). Pure."""
    theirs = {j.inspection_id: j for j in challenger}
    pairs = [(a, theirs[a.inspection_id]) for a in active if a.inspection_id in theirs]
    checked = [(a, c) for a, c in pairs if a.human]
    active_only = sum(a.right and not c.right for a, c in checked)
    challenger_only = sum(c.right and not a.right for a, c in checked)
    discordant = active_only + challenger_only
    p = float(stats.binomtest(active_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "items": len(pairs),
        "models_agree": Rate(sum(a.outcome == c.outcome for a, c in pairs), len(pairs)).as_dict(),
        "checked": len(checked),
        "active_only_right": active_only,
        "challenger_only_right": challenger_only,
        "mcnemar_p": round(p, 6),
    }


def _judged(rollout: Rollout | None, **filters) -> list[Judged]:
    if rollout is not None:
        filters["inspection__rollout"] = rollout
    rows = Prediction.objects.filter(**filters).values_list(
        "inspection_id",
        "defect_probability",
        "inspection__reject_threshold",
        "latency_ms",
        "inspection__review_item__decision",
        "inspection__review_item__shows_model",
    )
    judged = [
        Judged(i, p, threshold, ms, human or "", shows is False)
        for i, p, threshold, ms, human, shows in rows.order_by("inspection_id")
    ]
    return _with_classes(judged)


def _with_classes(judged: list[Judged]) -> list[Judged]:
    """The items a person called defective, with the classes their labels name."""
    defective = [j.inspection_id for j in judged if j.human == Outcome.REJECT]
    if not defective:
        return judged
    labels = (
        latest_revisions()
        .filter(inspection_id__in=defective)
        .exclude(boxes=[])
        .values_list("inspection_id", "boxes")
    )
    named = {item: tuple(sorted({box["label"] for box in boxes})) for item, boxes in labels}
    return [replace(j, classes=named.get(j.inspection_id, ())) for j in judged]


def rollout_report(rollout: Rollout, *, current_step_only: bool = False) -> dict:
    """The report of one rollout, read from its items now; of the items received at its
    current step alone with `current_step_only` (what the gate to the next step reads)."""
    rollout = Rollout.objects.select_related("line__active_model", "challenger").get(pk=rollout.pk)
    primary = {"role": PredictionRole.PRIMARY}
    if current_step_only:
        primary["inspection__rollout_share"] = rollout.share
    if rollout.mode == RolloutMode.MIRROR:
        active = _judged(rollout, **primary)
        challenger = _judged(rollout, **{**primary, "role": PredictionRole.CHALLENGER})
    else:
        # each model on the items it answered (the challenger's are those the draw gave it)
        active = _judged(rollout, **primary, inspection__serving_model__isnull=True)
        challenger = _judged(rollout, **primary, model_version=rollout.challenger)
    report = {
        "line": rollout.line.name,
        "mode": rollout.mode,
        "state": rollout.state,
        "share": rollout.share,
        "active": {
            "model": _name(rollout.line.active_model),
            "artifact_mb": _artifact_mb(rollout.line.active_model),
            **model_figures(active),
        },
        "challenger": {
            "model": rollout.challenger.name,
            "artifact_mb": _artifact_mb(rollout.challenger),
            **model_figures(challenger),
        },
    }
    if rollout.mode == RolloutMode.MIRROR:
        report["paired"] = paired_figures(active, challenger)
    else:
        report["active_before"] = model_figures(_track_record(rollout))
    return report


def _track_record(rollout: Rollout) -> list[Judged]:
    """The active model's human-checked items on the line in the BASELINE_DAYS before the
    rollout started."""
    if rollout.line.active_model_id is None:
        return []
    return _judged(
        None,
        role=PredictionRole.PRIMARY,
        model_version_id=rollout.line.active_model_id,
        inspection__line=rollout.line,
        inspection__received_at__gte=rollout.started_at - timedelta(days=BASELINE_DAYS),
        inspection__received_at__lt=rollout.started_at,
        inspection__review_item__decided_at__isnull=False,
    )


def _name(version) -> str | None:
    return version.name if version is not None else None


def _artifact_mb(version) -> float | None:
    try:
        return round(version.artifact_file.stat().st_size / 2**20, 2)
    except (AttributeError, OSError):  # no version, or its file is not on this machine
        return None


def rollout_steps(rollout: Rollout) -> list[dict]:
    """The rollout's steps in the order they were taken, from its items: share, first and last
    arrival, items, and the challenger's items (those it answered, or predicted on beside the
    active model in a mirror). Ordered by the first arrival; a share taken twice (a blue-green
    switched back and forth) is one row, from its first item to its last."""
    rows = (
        Inspection.objects.filter(rollout=rollout)
        .values("rollout_share")
        .annotate(
            first=Min("received_at"),
            last=Max("received_at"),
            items=Count("pk"),
            challenger_items=Count("pk", filter=Q(serving_model__isnull=False)),
        )
        .order_by("first")
    )
    return [
        {
            "share": row["rollout_share"],
            "first": row["first"].isoformat(),
            "last": row["last"].isoformat(),
            "items": row["items"],
            "challenger_items": row["challenger_items"],
        }
        for row in rows
    ]
