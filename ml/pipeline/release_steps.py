"""The release steps: infrastructure (the artifact in a fresh process, held to the latency
and memory budgets) and register (the candidate in the registry, judged by the gate).

A candidate that passes the gate at the assisted or automatic level starts as a mirror
challenger beside the line's active model (ml.challengers): it predicts on the line's real
items and decides none. From there monitoring.rollout_gate steps it on, to canary and to
active, by itself at automatic; at assisted a supervisor confirms each step. A line without an
active model has nothing to compare with: at automatic the candidate is promoted at once.
"""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.db import transaction

from inspection.errors import RolloutConflict
from ml import challengers, services
from ml.errors import ActiveModelChanged
from ml.gate import GateRules, judge
from ml.models import MlopsLevel, ModelVersion, PipelineRun
from ml.pipeline.context import StepContext, StepError, dataset_version


def infrastructure(context: StepContext) -> dict:
    """Load the artifact in a fresh process and hold its latency and memory to the budgets."""
    trained = context.earlier["train"]
    line = context.run.line
    policy = services.retraining_policy_for(line)
    folder = Path(settings.LOUPE_MODEL_DIR) / context.earlier["transform"]["folders"]["test"]
    image = next((folder / "images").iterdir())
    command = [
        sys.executable,
        "-m",
        "ml.probe",
        str(Path(settings.LOUPE_MODEL_DIR) / trained["artifact"]),
        "--sha256",
        trained["sha256"],
        "--image",
        str(image),
        "--runs",
        str(context.config["latency_runs"]),
        "--threads",
        str(settings.LOUPE_TORCH_THREADS),
    ]
    probe = subprocess.run(
        command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600
    )
    if probe.returncode != 0:
        raise StepError(f"the artifact does not run in a fresh process: {probe.stderr[-2000:]}")
    figures = json.loads(probe.stdout.strip().splitlines()[-1])
    context.log(f"fresh process: {figures}")
    over = []
    if figures["latency_ms_p95"] > line.latency_budget_ms:
        over.append(
            f"latency p95 {figures['latency_ms_p95']:.1f} ms exceeds the line's budget of "
            f"{line.latency_budget_ms} ms"
        )
    if figures["peak_memory_mb"] > policy.memory_budget_mb:
        over.append(
            f"peak memory {figures['peak_memory_mb']:.0f} MB exceeds the budget of "
            f"{policy.memory_budget_mb} MB"
        )
    if over:
        raise StepError("over budget: " + "; ".join(over))
    return {
        **figures,
        "latency_budget_ms": line.latency_budget_ms,
        "memory_budget_mb": policy.memory_budget_mb,
    }


def register(context: StepContext) -> dict:
    """Register the candidate with its lineage and figures; let the gate judge it, and at the
    automatic level promote it when the gate passes."""
    run = context.run
    trained = context.earlier["train"]
    evaluation = context.earlier["evaluate"]
    # the version and its link to the run commit together, so a retried step finds it here
    with transaction.atomic():
        version = PipelineRun.objects.select_for_update().get(pk=run.pk).candidate
        if version is None:
            dataset = dataset_version(context)
            version = services.register_model_version(
                artifact=Path(settings.LOUPE_MODEL_DIR) / trained["artifact"],
                metrics=evaluation["test"]["candidate"],
                hyperparameters=trained["hyperparameters"],
                train_seconds=trained["train_seconds"],
                training_data=f"dataset {dataset.name} ({dataset.version_hash[:12]})",
                line=run.line,
                dataset_version=dataset,
                parent=run.baseline if trained["warm_start_from"] else None,
            )
            PipelineRun.objects.filter(pk=run.pk).update(candidate=version)
    policy = services.retraining_policy_for(run.line)
    rules = GateRules(policy.gate_margin, policy.max_class_recall_drop)
    report = judge(evaluation, rules)
    gate = {
        **report.to_dict(),
        "rules": asdict(rules),
        "mlops_level": policy.mlops_level,
        "run": run.pk,
    }
    ModelVersion.objects.filter(pk=version.pk).update(evaluation={**evaluation, "gate": gate})
    for check in report.checks:
        context.log(f"gate {check.outcome}: {check.name}: {check.detail}")
    promoted, rollout = False, None
    hands_off = policy.mlops_level in (MlopsLevel.ASSISTED, MlopsLevel.AUTOMATIC)
    if not (hands_off and report.passed):
        context.log(f"{version.name} waits for a supervisor")
    elif run.line.active_model_id is not None:
        try:
            rollout = challengers.start_challenger(
                model_version=version,
                mode="mirror",
                changed_by="gate",
                reason=f"gate passed in pipeline run {run.pk}",
            ).pk
            context.log(f"{version.name} started as a mirror challenger: the gate passed")
        except RolloutConflict as exc:
            context.log(f"{version.name} waits for a supervisor: {exc}")
    elif policy.mlops_level == MlopsLevel.AUTOMATIC:
        try:
            services.promote_model_version(
                model_version=version,
                changed_by="gate",
                expected_active=run.baseline,
                reason=f"gate passed in pipeline run {run.pk}; the line had no active model",
            )
            promoted = True
            context.log(f"promoted {version.name}: the gate passed, no active model to challenge")
        except ActiveModelChanged as exc:
            context.log(f"not promoted: {exc}")
    return {
        "model_version": version.pk,
        "name": version.name,
        "gate": gate,
        "promoted": promoted,
        "rollout": rollout,
    }
