"""A line watched over time, end to end: `manage.py demo_drift` and tests/demo/test_drift_demo.py.

A line's first model is trained from an imported, frozen dataset version (the drift reference
is drawn from it). The line runs in shadow until the model's first unbiased items make the
concept-drift reference, and the supervisor raises it to full automation with a 2% audit.
Then, every item through the station's path (submit_inspection, the prediction, routing) and
every audit or blind sample decided by an inspector with the generator's truth:

1. unshifted: the default images; no alert of any kind may open;
2. inside the augmentation: the lighting at 0.9, which the training's brightness augmentation
   covers; still no alert;
3. camera shift: lighting 0.6 and blur 1.5, outside the augmentation, until the data-drift
   alert opens (its step-back raises the audit rate). Maintenance then fixes the camera and the
   supervisor resolves the alerts; a level the alerts lowered meanwhile is put back to full;
4. new defect type: default images again, a share of them of a type the model never saw,
   until the line steps back by itself (or a cap).

Between items the periodic jobs run in this process, as beat would run them: the data-drift
check (monitoring.drift), the monitoring buckets, the alert evaluation (monitoring.alerts, whose
step-back lowers the level). Figures are counted from the generator's truth, not from what the
product believes: an escape is a defective item the model auto-accepted, audited or not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

DRIFT_PASSWORD = "drift-demo-password-1"
ESCAPE_COST = 3  # false rejects one shipped defect is worth, to the demo's supervisor


def _first_run() -> dict:
    # setup_demo's first run (24 epochs at 64 px): the same recipe, so the same model quality
    from demo.first_model import FIRST_RUN

    return dict(FIRST_RUN)


@dataclass(frozen=True)
class DriftSettings:
    line_name: str = "drift-line"
    seed: int = 1
    image_size: int = 64
    history_images: int = 2000
    shadow_items: int = 300
    unshifted_items: int = 2000
    inside_items: int = 300
    inside_lighting: float = 0.9
    shift_lighting: float = 0.6
    shift_blur: float = 1.5
    shift_max_items: int = 600
    new_type: str = "discoloration"
    # the share of all items that hold the new type (new_type_weight)
    new_type_share: float = 0.05
    new_type_max_items: int = 3000
    audit_fraction: float = 0.02
    evaluate_every: int = 25
    accept_threshold: float = 0.2
    reject_threshold: float = 0.8
    first_run: dict = field(default_factory=_first_run)

    def new_type_weight(self) -> float:
        """The new type's weight beside the four old types (1 each) that puts it on
        new_type_share of all items. Half the items are defective, each with 1 to max_defects
        defects drawn by weight, so one holds the new type with chance 1 - (1 - q)^k for k
        defects at q = weight / (4 + weight): solved for q by bisection."""
        from ml.engine.generator import SurfaceConfig

        most = SurfaceConfig().max_defects
        target = self.new_type_share / 0.5
        low, high = 0.0, 1.0
        for _ in range(60):
            q = (low + high) / 2
            holds = sum(1 - (1 - q) ** k for k in range(1, most + 1)) / most
            low, high = (q, high) if holds < target else (low, q)
        return 4.0 * q / (1.0 - q)


@dataclass
class Phase:
    name: str
    items: int = 0
    defective: int = 0
    new_type: int = 0
    checked: int = 0
    escapes: int = 0
    escapes_found: int = 0
    alerts: list[dict] = field(default_factory=list)
    # from the new type's first item on (the new-type phase's figures count from there)
    first_new_type_at: int | None = None
    checked_since_new_type: int = 0
    escapes_since_new_type: int = 0


@dataclass
class DriftResult:
    summary: dict
    evidence: dict
    phases: list[Phase]
    seconds: dict

    def summary_line(self) -> str:
        return json.dumps(self.summary)


class _Line:
    """The demo's line and its people, and the item-by-item play."""

    def __init__(self, settings: DriftSettings, work_dir: Path, out: Callable[[str], None]):
        self.s, self.work_dir, self.out = settings, work_dir, out
        self.truth: dict[str, tuple[bool, tuple[str, ...]]] = {}
        self.posted = 0

    # -- setting up -----------------------------------------------------------------------
    def set_up(self) -> None:
        from accounts.services import create_user
        from demo.first_model import freeze_line, import_labeled_images, train_first_model
        from inspection import services as inspection_services
        from ml.engine.generator import DEFECT_CLASSES
        from monitoring.alert_rules import ensure_default_rules

        s = self.s
        classes = list(dict.fromkeys([*DEFECT_CLASSES, s.new_type]))
        self.line = inspection_services.create_line(
            name=s.line_name,
            level="human_only",
            accept_threshold=s.accept_threshold,
            reject_threshold=s.reject_threshold,
            defect_classes=classes,
        )
        self.station, _ = inspection_services.create_station(line=self.line, name="cam-1")
        people = {}
        for role in ("inspector", "supervisor", "data_team"):
            people[role] = create_user(
                username=f"{s.line_name}-{role}",
                role=role,
                line_names=[self.line.name],
                password=DRIFT_PASSWORD,
            )
        self.inspector, self.supervisor = people["inspector"], people["supervisor"]
        ensure_default_rules(self.line)

        history = self._generate("history", s.history_images, seed=s.seed)
        self.out(f"history: {s.history_images} images without {s.new_type}, imported")
        import_labeled_images(line=self.line, folder=history, user=people["data_team"])
        version = freeze_line(line=self.line, user=people["data_team"], name=f"{s.line_name}-v1")
        self.out("first model: trained from the frozen version, promoted")
        model, _ = train_first_model(
            line=self.line, dataset_version=version, supervisor=self.supervisor,
            config=s.first_run,
        )  # fmt: skip
        self.model_name = model.name
        self._set(automation_level="shadow", reason="the model's first unbiased items")

    def _set(self, *, reason: str, **values) -> None:
        from inspection import services as inspection_services

        self.line = inspection_services.set_line_settings(
            line=self.line, changed_by=self.supervisor.username, reason=reason, **values
        )

    def _generate(self, name: str, count: int, *, seed: int, weights=None, **camera) -> Path:
        from ml.engine.generator import ALL_CLASSES, DEFECT_CLASSES, SurfaceConfig, generate_dataset

        weights = weights or {name: 1.0 for name in DEFECT_CLASSES}
        config = SurfaceConfig(
            size=self.s.image_size,
            defect_rate=0.5,
            defect_mix=tuple((c, float(weights.get(c, 0.0))) for c in ALL_CLASSES),
            **camera,
        )
        path = self.work_dir / name
        if not (path / "annotations.json").exists():
            generate_dataset(path, count=count, seed=seed, config=config)
        return path

    def raise_to_full(self) -> dict:
        """What the supervisor does with the shadow run's evidence: the reject threshold the
        model decides at is the one where its disagreements with the inspector cost least, an
        escape (a defect shipped) weighing as much as ESCAPE_COST false rejects (the lower
        threshold on a tie), judged by the evidence gate the console uses. Plain agreement
        picks a high threshold that ships about twice the defects for a handful fewer false
        rejects (seed 3: 0.80 against 0.40)."""
        from django.conf import settings as django_settings

        from inspection import routing
        from inspection.evidence import AgreementFigures, AgreementItem, judge
        from inspection.models import DecidedBy, Prediction

        rows = Prediction.objects.filter(
            inspection__line=self.line, inspection__decision__decided_by=DecidedBy.HUMAN
        ).values_list("defect_probability", "inspection__decision__outcome")
        best = None
        for step in range(5, 96, 5):
            threshold = step / 100
            items = [
                AgreementItem(p, human, routing.model_outcome(p, threshold) == human)
                for p, human in rows
            ]
            figures = AgreementFigures.of(items)
            cost = figures.items - figures.agreeing + (ESCAPE_COST - 1) * figures.missed
            if best is None or cost < best[0]:
                best = (cost, threshold, figures)
        _, threshold, figures = best
        verdict = judge(
            figures=figures,
            total=figures.items,
            minimum=django_settings.LOUPE_MIN_AGREEMENT_ITEMS,
            agreement_target=self.line.agreement_target,
            escape_rate_limit=self.line.escape_rate_limit,
        )
        gate = {rule.name: f"{rule.has} (needs {rule.needs})" for rule in verdict.rules}
        self.out(f"  shadow evidence at reject threshold {threshold:.2f}: {gate}")
        self._set(
            automation_level="full",
            audit_fraction=self.s.audit_fraction,
            accept_threshold=min(self.line.accept_threshold, threshold - 0.05),
            reject_threshold=threshold,
            reason="the shadow run's evidence"
            + ("" if verdict.passed else " (gate not passed: raised by the supervisor anyway)"),
        )
        return {"reject_threshold": threshold, "gate_passed": verdict.passed, **gate}

    # -- playing items ----------------------------------------------------------------------
    def play(self, phase: Phase, folder: Path, *, max_items: int, stop=None) -> None:
        """Post the folder's images one by one; the inspector works the review queue after
        each; the periodic jobs run every evaluate_every items. Stops at max_items or when
        stop(phase) says so (asked after each evaluation)."""
        from ml.engine.dataset import load_coco_folder

        for sample in load_coco_folder(folder)[:max_items]:
            self._post(phase, sample)
            if phase.items % self.s.evaluate_every == 0:
                self.run_periodic_jobs(phase)
                if stop is not None and stop(phase):
                    return
        self.run_periodic_jobs(phase)

    def _post(self, phase: Phase, sample) -> None:
        from demo.loop_scenario import _validated
        from inspection.models import DecidedBy, Decision, Outcome, Station
        from inspection.submission import submit_inspection

        self.posted += 1
        external_id = f"{phase.name}-{phase.items}"
        labels = tuple(sorted({box.label for box in sample.boxes}))
        defective = bool(labels)
        self.truth[external_id] = (defective, labels)
        station = Station.objects.select_related("line").get(pk=self.station.pk)
        inspection, _ = submit_inspection(
            station=station, external_id=external_id, image=_validated(sample.path), metadata={}
        )
        phase.items += 1
        phase.defective += defective
        if self.s.new_type in labels:
            phase.new_type += 1
            if phase.first_new_type_at is None:
                phase.first_new_type_at = phase.items
        since_new_type = phase.first_new_type_at is not None
        checked = self._work_the_queue()
        phase.checked += checked
        phase.checked_since_new_type += checked if since_new_type else 0
        decision = Decision.objects.filter(inspection=inspection).first()
        if (
            defective
            and decision is not None
            and decision.decided_by == DecidedBy.MODEL
            and decision.outcome == Outcome.ACCEPT
        ):
            phase.escapes += 1
            phase.escapes_since_new_type += since_new_type

    def _work_the_queue(self) -> int:
        """The inspector decides every open review item with the truth. Returns how many were
        unbiased (decided without seeing the model: shadow, audits, blind samples)."""
        from inspection.selectors import visible_review_items
        from review import services as review

        unbiased = 0
        while True:
            item = review.claim_next_item(
                user=self.inspector, items=visible_review_items(self.inspector)
            )
            if item is None:
                return unbiased
            defective, _ = self.truth[item.inspection.external_id]
            review.decide_review_item(
                item=item,
                inspector=self.inspector,
                outcome="reject" if defective else "accept",
                time_spent_ms=1500,
            )
            unbiased += not item.shows_model

    def run_periodic_jobs(self, phase: Phase) -> None:
        from monitoring.aggregation import aggregate_recent
        from monitoring.alerts import evaluate_alerts
        from monitoring.drift import check_drift

        check_drift()
        # the minute buckets feed the pages and the fail-safe rule only, and cost a fifth of
        # the demo's time when rebuilt every evaluation
        if phase.items % (4 * self.s.evaluate_every) == 0:
            aggregate_recent()
        for alert in evaluate_alerts():
            if alert.line_id != self.line.pk:
                continue
            self.line.refresh_from_db()
            phase.alerts.append(
                {
                    "metric": alert.metric,
                    "after_items": phase.items,
                    "after_checked": phase.checked,
                    "after_checked_since_new_type": phase.checked_since_new_type,
                    "message": alert.message,
                    "level_now": self.line.automation_level,
                    "audit_fraction_now": self.line.audit_fraction,
                }
            )
            self.out(f"  {phase.name}, item {phase.items}: alert {alert.metric}: {alert.message}")

    def count_escapes_found(self, phase: Phase, *, from_item: int = 1) -> int:
        """Escapes an audit found among the phase's items from its from_item-th on."""
        from inspection.models import Escape, EscapeSource

        ids = {f"{phase.name}-{index}" for index in range(from_item - 1, phase.items)}
        found = Escape.objects.filter(
            inspection__line=self.line, source=EscapeSource.AUDIT,
            inspection__external_id__in=ids,
        )  # fmt: skip
        return found.count()

    def acknowledge_open_alerts(self, reason: str) -> None:
        """The supervisor acknowledges what is open; the evaluation resolves each alert once
        its condition clears (a drift window full of shifted images takes a few checks)."""
        from monitoring.alerts import acknowledge_alert, unresolved_alerts
        from monitoring.models import AlertState

        for alert in unresolved_alerts().filter(line=self.line, state=AlertState.OPEN):
            acknowledge_alert(alert=alert, user=self.supervisor.username)
        self.out(f"  the supervisor acknowledged the open alerts: {reason}")


MODEL_WRONG_METRICS = ("disagreement_drift", "escape_rate_drift", "escapes")


def run_drift_demo(
    *,
    work_dir: Path,
    settings: DriftSettings = DriftSettings(),  # noqa: B008 - frozen, so sharing it is safe
    out: Callable[[str], None] = print,
) -> DriftResult:
    """Play the scenario of the module docstring on a new line named settings.line_name."""
    from django.conf import settings as django_settings

    s = settings
    seconds: dict[str, float] = {}
    started = time.monotonic()
    # the inspector never takes a decision back, and a 15-minute demo stands for hours of a
    # line: decisions are final after a second instead of ten
    django_settings.LOUPE_UNDO_WINDOW_S = 1
    demo = _Line(s, Path(work_dir), out)
    demo.set_up()
    seconds["setup"] = time.monotonic() - started
    phases: list[Phase] = []

    def timed(phase: Phase, folder: Path, **kwargs) -> Phase:
        mark = time.monotonic()
        line = demo.line
        out(f"{phase.name}: level {line.automation_level}, audit {line.audit_fraction:.0%}")
        demo.play(phase, folder, **kwargs)
        phase.escapes_found = demo.count_escapes_found(phase)
        seconds[phase.name] = time.monotonic() - mark
        out(
            f"  {phase.items} items, {phase.checked} checked without the model, "
            f"{phase.escapes} escapes ({phase.escapes_found} found), {len(phase.alerts)} alerts"
        )
        phases.append(phase)
        return phase

    timed(Phase("shadow"), demo._generate("shadow", s.shadow_items, seed=s.seed + 1),
          max_items=s.shadow_items)  # fmt: skip
    evidence = demo.raise_to_full()
    level_before = demo.line.automation_level

    unshifted = timed(
        Phase("unshifted"), demo._generate("unshifted", s.unshifted_items, seed=s.seed + 2),
        max_items=s.unshifted_items,
    )  # fmt: skip
    inside = timed(
        Phase("lighting-0.9"),
        demo._generate("inside", s.inside_items, seed=s.seed + 3, lighting=s.inside_lighting),
        max_items=s.inside_items,
    )
    false_alerts = len(unshifted.alerts) + len(inside.alerts)

    def data_drift_seen(phase: Phase) -> bool:
        return any(a["metric"] == "data_drift" for a in phase.alerts)

    shift = timed(
        Phase("camera-shift"),
        demo._generate(
            "shift",
            s.shift_max_items,
            seed=s.seed + 4,
            lighting=s.shift_lighting,
            blur=s.shift_blur,
        ),  # fmt: skip
        max_items=s.shift_max_items,
        stop=data_drift_seen,
    )
    data_alert = next((a for a in shift.alerts if a["metric"] == "data_drift"), None)
    demo.acknowledge_open_alerts("maintenance fixed the camera")
    demo.line.refresh_from_db()
    if demo.line.automation_level != level_before:
        demo._set(automation_level=level_before, reason="camera fixed: back to full")

    weights = {name: 1.0 for name in ("scratch", "dent", "spot", "crack")}
    weights[s.new_type] = s.new_type_weight()
    level_lowered: dict = {}

    def stepped_back(phase: Phase) -> bool:
        demo.line.refresh_from_db()
        if demo.line.automation_level != level_before and not level_lowered:
            level_lowered.update(items=phase.items, checked=phase.checked)
        return bool(level_lowered)

    new = timed(
        Phase("new-type"),
        demo._generate("new-type", s.new_type_max_items, seed=s.seed + 5, weights=weights),
        max_items=s.new_type_max_items,
        stop=stepped_back,
    )
    concept = next((a for a in new.alerts if a["metric"] in MODEL_WRONG_METRICS), None)
    found_since_new_type = demo.count_escapes_found(new, from_item=new.first_new_type_at or 1)
    demo.line.refresh_from_db()
    seconds["total"] = time.monotonic() - started
    summary = {
        "data_drift_alert_after_items": data_alert["after_items"] if data_alert else None,
        "concept_drift_alert_after_items": (
            concept["after_checked_since_new_type"] if concept else None
        ),
        "false_alerts_before_shift": false_alerts,
        "level_before": level_before,
        "level_after": demo.line.automation_level,
        "escapes_before_level_lowered": new.escapes_since_new_type,
        "escapes_found_before_level_lowered": found_since_new_type,
    }
    return DriftResult(
        summary=summary,
        evidence=evidence,
        phases=phases,
        seconds={k: round(v, 1) for k, v in seconds.items()},
    )


def phase_table(result: DriftResult) -> str:
    rows = ["phase         items  defective  new type  checked  escapes  found  alerts"]
    for p in result.phases:
        rows.append(
            f"{p.name:<13} {p.items:>5}  {p.defective:>9}  {p.new_type:>8}  {p.checked:>7}  "
            f"{p.escapes:>7}  {p.escapes_found:>5}  "
            + (", ".join(f"{a['metric']}@{a['after_items']}" for a in p.alerts) or "none")
        )
    return "\n".join(rows)


def as_dict(result: DriftResult) -> dict:
    return {"summary": result.summary, "phases": [asdict(p) for p in result.phases]}
