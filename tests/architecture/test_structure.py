"""The structure a newcomer relies on: one-way imports, no hidden dependency, small modules.

These read the source tree, so they fail the moment a change breaks the rule, whoever makes it.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = [
    "loupe",
    "accounts",
    "inspection",
    "review",
    "labeling",
    "datasets",
    "ml",
    "demo",
    "monitoring",
]
MAX_LINES = 500


def _source_files(*, include_bench: bool = False):
    folders = APPS + (["bench"] if include_bench else [])
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: the app layers, ml.engine without Django,
    loupe.common without apps, services that never import tasks."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


# A dependency an import-linter cannot see: a module named in a string.
HIDDEN = [
    (re.compile(r"\bapps\.get_model\("), "apps.get_model"),
    (re.compile(r"\bimport_module\("), "importlib.import_module"),
    (re.compile(r"\b__import__\("), "__import__"),
    (re.compile(r"\bsend_task\("), "a task sent by name"),
    (re.compile(r"\bsignature\(\s*[\"']"), "a task signature by name"),
    (re.compile(r"\b(current_app|app)\.tasks\["), "a task looked up by name"),
    (re.compile(r"\bsubtask\(\s*[\"']"), "a task signature by name"),
]


@pytest.mark.parametrize("path", list(_source_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dependency_hides_in_a_string(path):
    text = path.read_text()
    found = [what for pattern, what in HIDDEN if pattern.search(text)]
    assert not found, f"{path.relative_to(ROOT)} uses {', '.join(found)}"


def test_no_module_over_the_limit():
    long = {
        str(path.relative_to(ROOT)): count
        for path in _source_files(include_bench=True)
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_decision_is_written_by_inspection_decisions():
    """One owner: no other module (benchmarks included) creates, updates or deletes Decision
    rows, creates decided inspections or changes an inspection's status."""
    writes = re.compile(
        r"Decision\.objects\.(create|bulk_create|update|get_or_create|update_or_create)"
        r"|(?<!class )\bDecision\(|Decision\.objects\.filter\([^)]*\)\.(update|delete)"
        r"|Inspection\.objects\.filter\([^)]*\)\.update\([^)]*status"
        r"|Inspection\.objects\.bulk_create|(?<!class )\bInspection\(|\binspection\.status = "
    )
    # services: receiving; offline: batch images sent to labeling, never routed or decided
    owners = {"inspection/decisions.py", "inspection/services.py", "inspection/offline.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in _source_files(include_bench=True)
        if path.relative_to(ROOT).as_posix() not in owners and writes.search(path.read_text())
    ]
    assert not offenders, f"decisions written outside inspection/decisions.py: {offenders}"


def _writers(model: str) -> set[str]:
    pattern = rf"{model}\.objects\.(create|bulk_create|update|filter\([^)]*\)\.(update|delete))"
    return {
        path.relative_to(ROOT).as_posix()
        for path in _source_files()
        if re.search(pattern, path.read_text())
    }


def test_every_line_change_row_is_written_by_the_audit_log_module():
    assert _writers("LineChange") == {"inspection/audit_log.py"}


def test_every_rollout_row_is_written_by_inspection_rollouts():
    assert _writers("Rollout") == {"inspection/rollouts.py"}


def test_one_function_activates_a_model():
    """ml.services.set_active_version switches the line and the registry's statuses together;
    the line's half is called from nowhere else."""
    callers = {
        str(path.relative_to(ROOT))
        for path in _source_files()
        if "set_line_active_model(" in path.read_text()
    }
    assert callers == {"inspection/services.py", "ml/services.py"}


def test_lines_stations_and_retraining_policies_are_written_by_their_services():
    """Every write to a line, its members or its stations goes through inspection.services
    (which keeps the audit log); a retraining policy through ml.services."""
    owners = {
        "inspection/services.py": re.compile(
            r"(\bline|\bstation)\.save\(|\b(Line|Station)\.objects\.(create|bulk_create)"
            r"|\b(Line|Station)\.objects\.[a-z_]+\([^)]*\)\.(update|delete)\("
            r"|\bmembers\.(add|remove|set|clear)\("
        ),
        "ml/services.py": re.compile(
            r"\bpolicy\.save\(|RetrainingPolicy\.objects\.(create|update|bulk_create)"
        ),
    }
    offenders = [
        f"{path.relative_to(ROOT)} ({owner}'s)"
        for path in _source_files(include_bench=True)
        for owner, writes in owners.items()
        if path.relative_to(ROOT).as_posix() != owner and writes.search(path.read_text())
    ]
    assert not offenders, f"written outside their owner: {offenders}"
