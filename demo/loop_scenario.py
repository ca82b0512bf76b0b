"""The data loop, end to end, on the synthetic line: `manage.py demo_loop` and tests/loop.

A line's active model was trained on images without one defect type. The line starts
producing that type; every item goes through the station's path (submit_inspection, the
prediction task, routing) and the review queue; an inspector decides it and draws the true
boxes with the services the browser pages use (review.services, labeling.services). Each
correction reaches the line's retraining policy through labeling's save hook; after
`retrain_every` corrections the policy starts the pipeline, which trains a candidate; the gate
passes it, and at the automatic level it starts as a mirror challenger beside the active model
(monitoring.rollout_gate steps it on from there as inspectors check items). Before and after,
both models are measured on held-out generated images that no one labeled: images of the new
type, and the line's new mix of all types.
"""

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOP_PASSWORD = "loop-demo-password-1"


@dataclass(frozen=True)
class LoopSettings:
    line_name: str = "loop-line"
    new_type: str = "discoloration"
    image_size: int = 64
    history_images: int = 1000
    # once it appears (a fault upstream, say), the new type is four times as likely as each
    # old one, so most corrections are of it
    new_type_weight: float = 4.0
    max_stream_images: int = 1200
    retrain_every: int = 250
    max_new_type_corrections: int = 200
    holdout_images: int = 300
    reject_threshold: float = 0.8
    accept_threshold: float = 0.2
    seed: int = 11
    first_run: dict = field(
        default_factory=lambda: {
            "epochs": 24,
            "trial_epochs": 3,
            "learning_rates": [0.003],
            "augmentations": [0.1, 0.25],
            "input_size": 64,
            "tune_budget_s": 60,
        }
    )
    retrain_run: dict = field(
        default_factory=lambda: {
            "epochs": 24,
            "trial_epochs": 2,
            "learning_rates": [0.002, 0.003],
            "augmentations": [0.1],
            "tune_budget_s": 60,
            "correction_repeats": 5,
        }
    )


@dataclass
class LoopResult:
    before: dict
    after: dict
    before_version: str
    after_version: str
    # what the gate made of the candidate: "active model", "mirror challenger" (at the
    # automatic level, beside the active model: monitoring.rollout_gate steps it on), or ""
    released: str
    released_by: str
    stream_images: int
    corrections: int
    new_type_corrections: int
    seconds: dict
    gate: dict


def _surface(settings: LoopSettings, weights: dict[str, float], defect_rate: float = 0.5):
    from ml.engine.generator import ALL_CLASSES, SurfaceConfig

    return SurfaceConfig(
        size=settings.image_size,
        defect_rate=defect_rate,
        defect_mix=tuple((name, float(weights.get(name, 0.0))) for name in ALL_CLASSES),
    )


def line_classes(settings: LoopSettings) -> list[str]:
    """The line's classes: the usual four, and the new type (known to the line, as a class
    the supervisor added, but absent from everything the first model learned from)."""
    from ml.engine.generator import DEFECT_CLASSES

    return list(dict.fromkeys([*DEFECT_CLASSES, settings.new_type]))


def old_mix(settings: LoopSettings) -> dict[str, float]:
    return {name: 1.0 for name in line_classes(settings) if name != settings.new_type}


def new_mix(settings: LoopSettings) -> dict[str, float]:
    return {**old_mix(settings), settings.new_type: settings.new_type_weight}


def truth_of(sample) -> tuple[str, list[dict]]:
    """The image label and boxes an inspector draws: the generator's own."""
    boxes = [
        {"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1, "label": b.label} for b in sample.boxes
    ]
    return ("defective" if boxes else "ok"), boxes


def _validated(path: Path):
    from django.conf import settings as django_settings

    from inspection.images import validate_image

    return validate_image(
        path.read_bytes(),
        max_bytes=django_settings.LOUPE_MAX_IMAGE_BYTES,
        max_pixels=django_settings.LOUPE_MAX_IMAGE_PIXELS,
    )


def inspect_and_label(*, station, sample, external_id: str, inspector) -> tuple:
    """One item through the station's path, then the inspector's decision and labels through
    the services the review and labeling pages call. Returns (inspection, revision)."""
    from inspection.models import Station
    from inspection.selectors import visible_review_items
    from inspection.submission import submit_inspection
    from labeling import services as labeling
    from review import services as review

    # as each POST does: the station and its line's policy are read afresh
    station = Station.objects.select_related("line").get(pk=station.pk)
    inspection, _ = submit_inspection(
        station=station, external_id=external_id, image=_validated(sample.path), metadata={}
    )
    image_label, boxes = truth_of(sample)
    item = review.claim_next_item(
        user=inspector, items=visible_review_items(inspector).filter(inspection=inspection)
    )
    if item is not None:
        review.decide_review_item(
            item=item,
            inspector=inspector,
            outcome="reject" if image_label == "defective" else "accept",
            time_spent_ms=1500,
        )
    revision, _ = labeling.save_annotation(
        inspection=inspection, author=inspector, image_label=image_label, boxes=boxes
    )
    return inspection, revision


def wait_for_run(run, *, timeout_s: float = 1800.0, poll_s: float = 1.0):
    """The run once finished (with eager tasks it is finished already)."""
    from ml.models import PipelineRunState

    deadline = time.monotonic() + timeout_s
    while True:
        run.refresh_from_db()
        if run.state in (PipelineRunState.SUCCEEDED, PipelineRunState.FAILED):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.pk} still {run.state} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def measure(version, holdout: dict[str, list], settings: LoopSettings) -> dict:
    """The figures the loop is judged by, on held-out generated images."""
    from ml.engine.evaluate import evaluate_at_thresholds
    from ml.pipeline import load_version

    model = load_version(version)
    thresholds = {
        "accept_threshold": settings.accept_threshold,
        "reject_threshold": settings.reject_threshold,
    }
    new_type = evaluate_at_thresholds(model, holdout["new_type"], **thresholds)
    mixed = evaluate_at_thresholds(model, holdout["mixed"], **thresholds)
    return {
        "new_type_recall": new_type["reject"]["recall_per_class"][settings.new_type],
        "new_type_recall_at_accept": new_type["accept"]["recall_per_class"][settings.new_type],
        "auroc": mixed["auroc"],
        "f1": mixed["reject"]["f1"],
        "precision": mixed["reject"]["precision"],
        "recall": mixed["reject"]["recall"],
        "box_iou": mixed["box_iou"],
        "recall_per_class": mixed["reject"]["recall_per_class"],
        "new_type_images": new_type["class_counts"][settings.new_type],
        "mixed_images": mixed["count"],
    }


def run_loop(
    *,
    work_dir: Path,
    settings: LoopSettings = LoopSettings(),  # noqa: B008 - frozen, so sharing it is safe
    out: Callable[[str], None] = print,
) -> LoopResult:
    """Play the scenario on a fresh line named settings.line_name; see the module docstring.

    Needs labeling.services.save_annotation to send the retraining policy check after a
    correction (ml.tasks.enqueue_policy_check), as the browser's saves do.
    """
    from accounts.services import create_user
    from inspection import services as inspection_services
    from inspection.models import Rollout
    from labeling.models import AnnotationRevision, LabelSource
    from ml import pipeline, services
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import generate_dataset
    from ml.models import MlopsLevel, PipelineRun, RunTrigger

    seconds: dict[str, float] = {}
    started = time.monotonic()
    work_dir = Path(work_dir)
    s = settings

    def folder(name: str, count: int, seed: int, weights: dict, defect_rate: float = 0.5):
        path = work_dir / name
        if not (path / "annotations.json").exists():
            generate_dataset(path, count=count, seed=seed, config=_surface(s, weights, defect_rate))
        return load_coco_folder(path)

    history = folder("history", s.history_images, s.seed, old_mix(s))
    stream = folder("stream", s.max_stream_images, s.seed + 1, new_mix(s))
    holdout = {
        "new_type": folder("holdout-new-type", s.holdout_images, s.seed + 2, {s.new_type: 1.0}),
        "mixed": folder("holdout-mixed", s.holdout_images, s.seed + 3, new_mix(s)),
    }
    seconds["generate"] = time.monotonic() - started

    line = inspection_services.create_line(
        name=s.line_name,
        level="human_only",
        accept_threshold=s.accept_threshold,
        reject_threshold=s.reject_threshold,
        defect_classes=line_classes(s),
    )
    station, _ = inspection_services.create_station(line=line, name="cam-1")
    inspector = create_user(
        username=f"{s.line_name}-inspector",
        role="inspector",
        line_names=[line.name],
        password=LOOP_PASSWORD,
    )
    supervisor = create_user(
        username=f"{s.line_name}-supervisor",
        role="supervisor",
        line_names=[line.name],
        password=LOOP_PASSWORD,
    )

    out(f"history: {len(history)} images without {s.new_type}, labeled by an inspector")
    mark = time.monotonic()
    for index, sample in enumerate(history):
        inspect_and_label(
            station=station, sample=sample, external_id=f"H-{index}", inspector=inspector
        )
    seconds["history"] = time.monotonic() - mark

    out("first model: a run started by hand, promoted by the supervisor")
    mark = time.monotonic()
    first = pipeline.start_run(
        line=line, trigger=RunTrigger.MANUAL, started_by=supervisor, config=s.first_run
    )
    first = wait_for_run(first)
    out(describe_run(first))
    if first.candidate is None:
        raise RuntimeError(f"the first run failed: {first.error}")
    before_version = services.promote_model_version(
        model_version=first.candidate,
        changed_by=supervisor.username,
        expected_active=None,
        reason="first model of the line",
    )
    seconds["first_run"] = time.monotonic() - mark
    before = measure(before_version, holdout, s)
    out(f"before ({before_version.name}): {_describe(before, s)}")

    inspection_services.set_line_level(
        line=line, level="assist", changed_by=supervisor.username, reason="loop demo"
    )
    services.set_retraining_policy(
        line=line,
        changed_by=supervisor.username,
        mlops_level=MlopsLevel.AUTOMATIC,
        retrain_every_corrections=s.retrain_every,
        run_config=s.retrain_run,
    )

    out(f"the line starts producing {s.new_type}; the inspector corrects the model")
    mark = time.monotonic()
    corrections = AnnotationRevision.objects.filter(
        inspection__line=line, source=LabelSource.CORRECTION
    )
    run = None
    streamed = 0
    for index, sample in enumerate(stream):
        inspect_and_label(
            station=station, sample=sample, external_id=f"S-{index}", inspector=inspector
        )
        streamed = index + 1
        run = PipelineRun.objects.filter(line=line, trigger=RunTrigger.POLICY).first()
        if run is not None:
            break
    seconds["stream"] = time.monotonic() - mark
    new_type_corrections = sum(
        any(b["label"] == s.new_type for b in boxes)
        for boxes in corrections.values_list("boxes", flat=True)
    )
    if run is None:
        raise RuntimeError(
            f"no retraining run started after {streamed} items and {corrections.count()} "
            "corrections: does labeling.services.save_annotation send the policy check?"
        )
    out(
        f"after {streamed} items, {corrections.count()} corrections "
        f"({new_type_corrections} of {s.new_type}) the policy started run {run.pk}"
    )
    mark = time.monotonic()
    run = wait_for_run(run)
    seconds["retrain_run"] = time.monotonic() - mark
    out(describe_run(run))
    if run.candidate is None:
        raise RuntimeError(f"the retraining run failed: {run.error}")
    line.refresh_from_db()
    candidate = run.candidate
    candidate.refresh_from_db()
    after = measure(candidate, holdout, s)
    rollout = Rollout.objects.filter(line=line, challenger=candidate).first()
    if line.active_model_id == candidate.pk:
        released = "active model"
        released_by = line.changes.filter(field="active_model").first().changed_by
    elif rollout is not None:
        released, released_by = f"{rollout.mode} challenger", rollout.started_by
    else:
        released, released_by = "", ""
    out(f"after ({candidate.name}): {_describe(after, s)}")
    out(f"gate: {'passed' if candidate.evaluation['gate']['passed'] else 'not passed'}")
    for check in candidate.evaluation["gate"]["checks"]:
        out(f"  {check['outcome']:<4} {check['name']}: {check['detail']}")
    out(f"{candidate.name}: {released or 'waits for a supervisor'}")
    seconds["total"] = time.monotonic() - started
    return LoopResult(
        before=before,
        after=after,
        before_version=before_version.name,
        after_version=candidate.name,
        released=released,
        released_by=released_by,
        stream_images=streamed,
        corrections=corrections.count(),
        new_type_corrections=new_type_corrections,
        seconds={k: round(v, 1) for k, v in seconds.items()},
        gate=candidate.evaluation["gate"],
    )


def _step_note(name: str, a: dict) -> str:
    if name == "ingest":
        return f"{a.get('name')}, {a.get('images')} images, {a.get('splits')}"
    if name == "tune":
        return ", ".join(
            f"lr {t['learning_rate']:g} aug {t['augmentation']:g}: {t['score']:.4f}"
            for t in a.get("trials", [])
        )
    if name == "train":
        return f"{a.get('train_images')} samples, from {a.get('warm_start_from') or 'scratch'}"
    if name == "infrastructure":
        return f"p95 {a.get('latency_ms_p95')} ms, {a.get('peak_memory_mb')} MB"
    if name == "register":
        return f"{a.get('name')}, promoted: {a.get('promoted')}, challenger: {a.get('rollout')}"
    return ""


def describe_run(run) -> str:
    """One line per step: state, duration and what it found."""
    lines = [f"run {run.pk} ({run.state}):"]
    for step in run.steps.order_by("position"):
        duration = f"{step.duration_s:.1f}s" if step.duration_s is not None else "-"
        note = step.error or _step_note(step.name, step.artifacts)
        lines.append(f"  {step.name:<15} {step.state:<9} {duration:>7}  {note}")
    return "\n".join(lines)


def _describe(figures: dict, s: LoopSettings) -> str:
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in figures["recall_per_class"].items())
    return (
        f"{s.new_type} recall {figures['new_type_recall']:.3f} "
        f"(on {figures['new_type_images']} held-out images); on {figures['mixed_images']} "
        f"held-out images of the new mix: AUROC {figures['auroc']:.4f}, F1 {figures['f1']:.3f}, "
        f"box IoU {figures['box_iou']:.3f}, recall per class: {per_class}"
    )


def table(result: LoopResult, s: LoopSettings) -> str:
    """The before/after figures as a Markdown table, for the README."""
    rows = [
        ("model", result.before_version, result.after_version),
        (
            f"{s.new_type} recall at reject threshold {s.reject_threshold:g}",
            f"{result.before['new_type_recall']:.3f}",
            f"{result.after['new_type_recall']:.3f}",
        ),
        (
            f"{s.new_type} items not auto-accepted (p > {s.accept_threshold:g})",
            f"{result.before['new_type_recall_at_accept']:.3f}",
            f"{result.after['new_type_recall_at_accept']:.3f}",
        ),
        ("AUROC, new mix", f"{result.before['auroc']:.4f}", f"{result.after['auroc']:.4f}"),
        ("F1 at reject threshold", f"{result.before['f1']:.3f}", f"{result.after['f1']:.3f}"),
        ("box IoU", f"{result.before['box_iou']:.3f}", f"{result.after['box_iou']:.3f}"),
    ]
    for name in result.after["recall_per_class"]:
        rows.append(
            (
                f"recall of {name}",
                f"{result.before['recall_per_class'].get(name, 0.0):.3f}",
                f"{result.after['recall_per_class'][name]:.3f}",
            )
        )
    buffer = io.StringIO()
    buffer.write("| figure | before | after |\n|---|---:|---:|\n")
    for row in rows:
        buffer.write(f"| {' | '.join(row)} |\n")
    return buffer.getvalue()
