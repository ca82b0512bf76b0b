"""The evaluation gate: whether a candidate may replace the active model without a person.

Pure functions over the evaluate step's figures, so every rule is tested without training.
The candidate must gain `margin` in F1 at the line's reject threshold (what the model decides
on its own) on both evaluation sets, the test split and the corrections made since the
active model was trained, and no class's recall may fall by more than `max_class_recall_drop`
on either set.
"""

from dataclasses import asdict, dataclass

# A class with fewer images than this in a set has too noisy a recall to judge: with 4
# images one miss moves it by 0.25. The check is shown as skipped, not silently passed.
MIN_CLASS_IMAGES = 5
_EPSILON = 1e-9  # figures are stored as JSON floats; an exact tie must not fail

SETS = (("test", "test split"), ("corrections", "corrections since the active model"))


@dataclass(frozen=True)
class GateRules:
    margin: float
    max_class_recall_drop: float
    min_class_images: int = MIN_CLASS_IMAGES


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # "pass", "fail" or "skip"
    detail: str


@dataclass(frozen=True)
class GateReport:
    passed: bool
    checks: tuple[Check, ...]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def judge(evaluation: dict, rules: GateRules) -> GateReport:
    """evaluation: {"test": {"candidate": figures, "active": figures | None},
    "corrections": same or None}, figures as ml.engine.evaluate.evaluate_at_thresholds."""
    checks: list[Check] = []
    for key, label in SETS:
        pair = evaluation.get(key) or {}
        candidate, active = pair.get("candidate"), pair.get("active")
        if not candidate or not candidate.get("count"):
            checks.append(Check(f"{label}: F1", "fail", f"no images in the {label}"))
            continue
        if not active:
            checks.append(Check(f"{label}: F1", "fail", "no active model to compare with"))
            continue
        checks.append(_f1_check(label, candidate, active, rules.margin))
        checks.extend(_class_checks(label, candidate, active, rules))
    return GateReport(all(c.outcome != "fail" for c in checks), tuple(checks))


def _f1_check(label: str, candidate: dict, active: dict, margin: float) -> Check:
    new, old = candidate["reject"]["f1"], active["reject"]["f1"]
    outcome = "pass" if new + _EPSILON >= old + margin else "fail"
    return Check(
        f"{label}: F1",
        outcome,
        f"candidate {new:.3f}, active {old:.3f}: needs at least {old + margin:.3f}",
    )


def _class_checks(label: str, candidate: dict, active: dict, rules: GateRules) -> list[Check]:
    checks = []
    new_recall = candidate["reject"]["recall_per_class"]
    old_recall = active["reject"]["recall_per_class"]
    for name, count in sorted(candidate.get("class_counts", {}).items()):
        title = f"{label}: recall of {name}"
        if count < rules.min_class_images:
            checks.append(Check(title, "skip", f"only {count} images: too few to judge"))
            continue
        new, old = new_recall.get(name, 0.0), old_recall.get(name, 0.0)
        drop = old - new
        outcome = "pass" if drop <= rules.max_class_recall_drop + _EPSILON else "fail"
        checks.append(
            Check(
                title,
                outcome,
                f"candidate {new:.3f}, active {old:.3f} on {count} images "
                f"(may fall by {rules.max_class_recall_drop:.3f} at most)",
            )
        )
    return checks
