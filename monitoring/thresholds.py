"""The lines drawn on a line's monitoring charts, and where each comes from.

The latency budget and the agreement target are the line's own settings (inspection.Line). The
reject rate is drawn against the line's own 30-day rate: a departure from it is what matters,
whatever the product's usual defect rate. The fail-safe rate and the review backlog are drawn
at the line's alert rules' thresholds (monitoring.alert_rules); the defaults below stand for a
line whose rules were never saved.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Sum

from inspection.models import Line
from monitoring.models import AlertMetric, AlertRule, Bucket, Width

# above 1% of items the fail-safe is no longer the exception: the model or its workers are
# failing, or the budget is too tight for them
FAIL_SAFE_PCT = 1.0
# open review items: about an hour's work for one inspector at ~15 s an item
REVIEW_BACKLOG = 250
REFERENCE_SPAN = timedelta(days=30)


@dataclass(frozen=True)
class Thresholds:
    latency_budget_ms: int
    agreement_target_pct: float
    fail_safe_pct: float
    review_backlog: int
    reject_reference_pct: float | None

    def as_dict(self) -> dict:
        return {
            "latency_budget_ms": self.latency_budget_ms,
            "agreement_target_pct": self.agreement_target_pct,
            "fail_safe_pct": self.fail_safe_pct,
            "review_backlog": self.review_backlog,
            "reject_reference_pct": self.reject_reference_pct,
        }


def thresholds_for(line: Line, now) -> Thresholds:
    rules = dict(
        AlertRule.objects.filter(
            line=line, metric__in=[AlertMetric.FAIL_SAFE_RATE, AlertMetric.REVIEW_BACKLOG]
        ).values_list("metric", "threshold")
    )
    sums = Bucket.objects.filter(
        line=line, width_s=Width.HOUR, start__gte=now - REFERENCE_SPAN
    ).aggregate(accepts=Sum("accepts"), rejects=Sum("rejects"))
    decided = (sums["accepts"] or 0) + (sums["rejects"] or 0)
    return Thresholds(
        latency_budget_ms=line.latency_budget_ms,
        agreement_target_pct=round(100 * line.agreement_target, 2),
        fail_safe_pct=rules.get(AlertMetric.FAIL_SAFE_RATE, FAIL_SAFE_PCT),
        review_backlog=int(rules.get(AlertMetric.REVIEW_BACKLOG, REVIEW_BACKLOG)),
        reject_reference_pct=round(100 * sums["rejects"] / decided, 2) if decided else None,
    )
