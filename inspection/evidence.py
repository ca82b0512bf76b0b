"""The evidence gate for raising a line: pure figures and rules, no database.

The evidence is the *unbiased* items: ones the active model judged and a human then decided
without seeing the model's answer (shadow items, audits of the model's decisions, blind samples
at assist and partial). Items decided with the model in view (assist, partial's unsure band)
are reported apart and never count: an anchored human agrees more, whatever the model is worth.

Raising a line above assist (letting the model decide) needs all three rules:

1. minimum: at least LOUPE_MIN_AGREEMENT_ITEMS unbiased items of the active model;
2. agreement: the Wilson 95% lower bound of the human-model agreement on them at or above the
   line's `agreement_target` (default 95%);
3. escapes: the Wilson 95% upper bound of the model's *miss rate* at or below the line's
   `escape_rate_limit` (default 25%).

Each rule is a one-sided claim ("agreement is at least the target", "the miss rate is at most
the limit"), so each bound is a one-sided 95% confidence bound (Wilson score, z = 1.645; the
two ends of a 90% interval).

The miss rate is the share of defective items (those the human rejected, unbiased) that the
model would have accepted: an escape, had the model decided. It is measured among defective
items, not among all items, because at a low defect rate a model that misses every defect still
agrees on nearly every item: at 2% defects, 400 items with all 8 defects missed are 98%
agreement (lower bound 96.5%, passing a 95% target), and 2% escapes per item looks small.
Among defective items the same model misses 8 of 8 (lower bound 75%). A line with no defective
item among its unbiased evidence has an unknown miss rate (upper bound 100%): the gate asks to
have seen defects caught.

What the defaults ask, in figures: agreement at 97% passes a 95% target from about 350 items
(at 200 items it takes 196 agreeing, 98%); zero misses pass a 25% limit from 9 defective
items; 40 defective items pass with up to 5 misses (upper bound 23.5%) and fail at 6 (26.5%).
"""

from dataclasses import dataclass

from inspection.models import Outcome
from loupe.common.stats import Z_95_ONE_SIDED, wilson_interval


@dataclass(frozen=True)
class AgreementItem:
    """One item both the model and a human judged."""

    defect_probability: float
    human_decision: str
    model_agrees: bool


@dataclass(frozen=True)
class AgreementFigures:
    """Agreement and the model's misses on a set of items, with one-sided 95% Wilson bounds
    (each pair's low end is the 95% lower bound, its high end the 95% upper bound)."""

    items: int
    agreeing: int
    defective: int  # the human rejected
    missed: int  # the human rejected and the model would have accepted

    @classmethod
    def of(cls, items: list[AgreementItem]) -> "AgreementFigures":
        defective = [item for item in items if item.human_decision == Outcome.REJECT]
        return cls(
            items=len(items),
            agreeing=sum(item.model_agrees for item in items),
            defective=len(defective),
            missed=sum(not item.model_agrees for item in defective),
        )

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.items if self.items else None

    @property
    def agreement_bounds(self) -> tuple[float, float]:
        return wilson_interval(self.agreeing, self.items, Z_95_ONE_SIDED)

    @property
    def miss_rate(self) -> float | None:
        return self.missed / self.defective if self.defective else None

    @property
    def miss_bounds(self) -> tuple[float, float]:
        return wilson_interval(self.missed, self.defective, Z_95_ONE_SIDED)

    # percentages for pages
    @property
    def agreement_pct(self) -> float | None:
        return None if self.agreement is None else 100 * self.agreement

    @property
    def agreement_bounds_pct(self) -> tuple[float, float]:
        low, high = self.agreement_bounds
        return 100 * low, 100 * high

    @property
    def miss_pct(self) -> float | None:
        return None if self.miss_rate is None else 100 * self.miss_rate

    @property
    def miss_bounds_pct(self) -> tuple[float, float]:
        low, high = self.miss_bounds
        return 100 * low, 100 * high


@dataclass(frozen=True)
class Rule:
    """One rule of the gate: what it needs, what the line has, and whether that is enough."""

    name: str
    passed: bool
    needs: str
    has: str


@dataclass(frozen=True)
class Verdict:
    rules: tuple[Rule, ...]

    @property
    def passed(self) -> bool:
        return all(rule.passed for rule in self.rules)

    @property
    def failed(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if not rule.passed)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def judge(
    *,
    figures: AgreementFigures,
    total: int,
    minimum: int,
    agreement_target: float,
    escape_rate_limit: float,
) -> Verdict:
    """The three rules on the unbiased evidence: `total` unbiased items in all, `figures` of
    the latest of them (the window the bounds are measured on)."""
    agreement_low = figures.agreement_bounds[0]
    miss_high = figures.miss_bounds[1]
    if figures.defective:
        misses = f"{figures.missed} of {figures.defective} defective items missed"
    else:
        misses = "no defective item among them, so the miss rate is unknown"
    return Verdict(
        rules=(
            Rule(
                name="minimum",
                passed=total >= minimum,
                needs=f"at least {minimum} unbiased items",
                has=f"{total}",
            ),
            Rule(
                name="agreement",
                passed=figures.items > 0 and agreement_low >= agreement_target,
                needs=f"agreement lower bound ≥ {_pct(agreement_target)}",
                has=(
                    f"{_pct(agreement_low)} ({figures.agreeing} of {figures.items} agree)"
                    if figures.items
                    else "no unbiased item yet"
                ),
            ),
            Rule(
                name="escapes",
                passed=miss_high <= escape_rate_limit,
                needs=f"miss-rate upper bound ≤ {_pct(escape_rate_limit)}",
                has=f"{_pct(miss_high)} ({misses})",
            ),
        )
    )
