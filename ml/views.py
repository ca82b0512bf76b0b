"""The model registry pages: versions side by side, one version against the model it would
replace, pipeline runs with their progress, and the supervisor's actions (start a run,
promote, discard, roll back, set the line's retraining policy).

Every lookup goes through ml.selectors / inspection.selectors (another line's object is a 404);
the rules live in ml.services and ml.pipeline. Actions are POSTs that redirect back with a
message; a GET never starts work.
"""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspection.selectors import visible_lines
from loupe.common.errors import LoupeError
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import CAN_CONTROL_LINES, CAN_START_RETRAINING, CAN_VIEW_LINES
from ml import pipeline, services
from ml.models import (
    ModelStatus,
    ModelVersion,
    PipelineRunState,
    QueueMeasurement,
    RetrainingPolicy,
)
from ml.selectors import visible_runs, visible_versions

COLUMNS = 8  # versions side by side; older ones are a click away


class RetrainingPolicyForm(forms.ModelForm):
    reason = forms.CharField(required=False, max_length=500)

    class Meta:
        model = RetrainingPolicy
        fields = [
            "mlops_level",
            "retrain_every_corrections",
            "gate_margin",
            "max_class_recall_drop",
        ]


def _who(request) -> str:
    return request.user.get_username()


def _line_or_404(request, pk):
    return get_object_or_404(visible_lines(request.user).select_related("active_model"), pk=pk)


def _figure_rows(versions: list[ModelVersion]) -> list[dict]:
    """The registry's rows: one figure per row, one version per column."""

    def test(key):
        return lambda v: v.metrics.get(key)

    def at(threshold, key):
        return lambda v: (v.metrics.get(threshold) or {}).get(key)

    rows = [
        ("Test images", test("count"), "int"),
        ("AUROC", test("auroc"), "4"),
        ("Box IoU", test("box_iou"), "3"),
        ("Precision at reject", at("reject", "precision"), "3"),
        ("Recall at reject", at("reject", "recall"), "3"),
        ("F1 at reject", at("reject", "f1"), "3"),
        ("Precision at accept", at("accept", "precision"), "3"),
        ("Recall at accept", at("accept", "recall"), "3"),
        ("F1 at accept", at("accept", "f1"), "3"),
    ]
    classes = sorted(
        {c for v in versions for c in (v.metrics.get("reject") or {}).get("recall_per_class", {})}
    )
    for name in classes:
        rows.append(
            (
                f"Recall of {name} at reject",
                lambda v, n=name: (
                    (v.metrics.get("reject") or {}).get("recall_per_class", {}).get(n)
                ),
                "3",
            )
        )
    return [
        {"label": label, "format": fmt, "values": [get(v) for v in versions]}
        for label, get, fmt in rows
    ]


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def registry_page(request):
    lines = list(visible_lines(request.user).select_related("active_model"))
    line = None
    if request.GET.get("line"):
        line = _line_or_404(request, request.GET["line"])
    elif lines:
        line = lines[0]
    versions = list(visible_versions(request.user).filter(line=line)[:COLUMNS]) if line else []
    can_control = request.user.has_perm(CAN_CONTROL_LINES)
    policy = services.retraining_policy_for(line) if line else None
    return render(
        request,
        "ml/registry.html",
        {
            "lines": lines,
            "line": line,
            "retraining_policy": policy,
            "retraining_policy_form": RetrainingPolicyForm(instance=policy)
            if policy and can_control
            else None,
            "versions": versions,
            "rows": _figure_rows(versions),
            "runs": visible_runs(request.user).filter(line=line)[:20] if line else [],
            "previous": services.previous_active_version(line) if line else None,
            "can_control": can_control,
            "can_start_runs": request.user.has_perm(CAN_START_RETRAINING),
            "unassigned": visible_versions(request.user).filter(line__isnull=True)[:COLUMNS],
            "queue_measurements": QueueMeasurement.objects.all()[:5],
        },
    )


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def version_page(request, pk):
    version = get_object_or_404(visible_versions(request.user), pk=pk)
    evaluation = version.evaluation or {}
    comparisons = []
    for key, label in (
        ("test", "Test split"),
        ("corrections", "Corrections since the active model"),
    ):
        pair = evaluation.get(key)
        if pair:
            comparisons.append({"label": label, **pair})
    active = version.line.active_model if version.line else None
    return render(
        request,
        "ml/version.html",
        {
            "version": version,
            "active": active,
            "comparisons": comparisons,
            "gate": evaluation.get("gate"),
            "baseline": evaluation.get("baseline"),
            "can_decide": request.user.has_perm(CAN_CONTROL_LINES)
            and version.status == ModelStatus.CANDIDATE
            and version.line is not None,
            "run": getattr(version, "pipeline_run", None),
            "children": version.children.all(),
        },
    )


def _back_to(version: ModelVersion) -> str:
    return reverse("ml:version", args=[version.pk])


def _act(request, action, success: str, back: str):
    """Run a service; a domain error comes back to the page as a message, not a 500."""
    try:
        action()
    except LoupeError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(back)


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def promote(request, pk):
    version = get_object_or_404(visible_versions(request.user), pk=pk)
    expected = request.POST.get("expected_active") or None
    expected_version = ModelVersion.objects.filter(pk=expected).first() if expected else None
    return _act(
        request,
        lambda: services.promote_model_version(
            model_version=version,
            changed_by=_who(request),
            expected_active=expected_version,
            reason=request.POST.get("reason", "")[:500],
        ),
        f"{version.name} serves {version.line} from the next inspection.",
        _back_to(version),
    )


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def discard(request, pk):
    version = get_object_or_404(visible_versions(request.user), pk=pk)
    return _act(
        request,
        lambda: services.discard_candidate(
            model_version=version,
            changed_by=_who(request),
            reason=request.POST.get("reason", "")[:500],
        ),
        f"{version.name} discarded.",
        _back_to(version),
    )


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def rollback(request, line_pk):
    line = _line_or_404(request, line_pk)
    expected = get_object_or_404(ModelVersion, pk=request.POST.get("expected_active") or 0)
    return _act(
        request,
        lambda: services.rollback_line(
            line=line,
            expected_active=expected,
            changed_by=_who(request),
            reason=request.POST.get("reason", "")[:500],
        ),
        f"{line.name} rolled back: the previous version serves from the next inspection.",
        f"{reverse('ml:registry')}?line={line.pk}",
    )


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def set_retraining_policy(request, line_pk):
    line = _line_or_404(request, line_pk)
    form = RetrainingPolicyForm(request.POST, instance=services.retraining_policy_for(line))
    back = f"{reverse('ml:registry')}?line={line.pk}"
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(back)
    values = {k: form.cleaned_data[k] for k in RetrainingPolicyForm.Meta.fields}
    return _act(
        request,
        lambda: services.set_retraining_policy(
            line=line, changed_by=_who(request), reason=form.cleaned_data["reason"], **values
        ),
        f"Retraining policy of {line.name} saved.",
        back,
    )


@require_POST
@permission_required(CAN_START_RETRAINING, raise_exception=True)
def start_run(request, line_pk):
    line = _line_or_404(request, line_pk)
    try:
        run = pipeline.start_run(line=line, started_by=request.user)
    except LoupeError as error:
        messages.error(request, error.message)
        return redirect(f"{reverse('ml:registry')}?line={line.pk}")
    return redirect("ml:run", pk=run.pk)


@require_POST
@permission_required(CAN_START_RETRAINING, raise_exception=True)
def retry_run(request, pk):
    run = get_object_or_404(visible_runs(request.user), pk=pk)
    return _act(
        request,
        lambda: pipeline.retry_run(run=run),
        f"Run {run.pk} continues from its failed step.",
        reverse("ml:run", args=[run.pk]),
    )


def run_status(run) -> dict:
    """What the run page shows and polls: each step's state, duration, progress, log and
    artifacts."""
    return {
        "id": run.pk,
        "state": run.state,
        "error": run.error,
        "is_finished": run.state in (PipelineRunState.SUCCEEDED, PipelineRunState.FAILED),
        "is_retryable": pipeline.is_retryable(run),
        "candidate": run.candidate.name if run.candidate else None,
        "candidate_url": reverse("ml:version", args=[run.candidate_id])
        if run.candidate_id
        else None,
        "steps": [
            {
                "name": step.name,
                "state": step.state,
                "progress": round(step.progress, 3),
                "duration_s": None if step.duration_s is None else round(step.duration_s, 1),
                "attempts": step.attempts,
                "error": step.error,
                "log": step.log,
                "artifacts": step.artifacts,
            }
            for step in run.steps.order_by("position")
        ],
    }


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def run_page(request, pk):
    run = get_object_or_404(visible_runs(request.user), pk=pk)
    status = run_status(run)
    for step in status["steps"]:
        step["artifacts_text"] = json.dumps(step["artifacts"], indent=1)
    return render(
        request,
        "ml/run.html",
        {
            "run": run,
            "status": status,
            "can_start_runs": request.user.has_perm(CAN_START_RETRAINING),
        },
    )


@require_GET
@json_endpoint
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def run_status_json(request, pk):
    run = get_object_or_404(visible_runs(request.user), pk=pk)
    return run_status(run)


ORDER_NAMES = {
    "queue": "Labeling queue",
    "random": "Random order",
    "arrival": "Arrival order",
}


def queue_measurement_view(result: dict) -> dict:
    """A stored measurement as the page shows it: one row per order, one per step."""
    orders = result.get("orders", {})
    steps = sorted({p["labeled"] for o in orders.values() for p in o.get("curve", [])})

    def at(order: dict, b: int) -> dict:
        return next((p for p in order.get("curve", []) if p["labeled"] == b), {})

    return {
        "orders": [
            {"key": key, "name": ORDER_NAMES.get(key, key), **order}
            for key, order in orders.items()
        ],
        "steps": [
            {"labeled": b, "points": [at(order, b) for order in orders.values()]} for b in steps
        ],
        "chart": {
            "target_recall": result.get("target_recall"),
            "series": [
                {
                    "key": key,
                    "name": ORDER_NAMES.get(key, key),
                    "points": [
                        {
                            "labeled": p["labeled"],
                            "recall": p["new_type_recall"],
                            "new_type_labeled": p["new_type_labeled"],
                        }
                        for p in order.get("curve", [])
                    ],
                }
                for key, order in orders.items()
            ],
        },
    }


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def queue_measurement_page(request, pk):
    # synthetic lines only, so no line's data: everyone who sees models sees these
    measurement = get_object_or_404(QueueMeasurement, pk=pk)
    result = measurement.result or {}
    return render(
        request,
        "ml/queue_measurement.html",
        {
            "measurement": measurement,
            "result": result,
            "view": queue_measurement_view(result),
            "strategy": result.get("strategy", {}),
            "settings": result.get("settings", {}),
        },
    )
