"""What a fault run did, read from what the stations got and from the database itself.

The database is read with plain SQL on the fault test's own PostgreSQL: the test process's
Django connection points at another database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from tests.faults.stations import Fleet

ROWS = """
SELECT i.external_id, i.status, i.fail_safe_reason, i.routed_at,
       d.outcome, d.decided_by, r.id IS NOT NULL AS in_queue, r.state
FROM inspection_inspection i
LEFT JOIN inspection_decision d ON d.inspection_id = i.id
LEFT JOIN inspection_reviewitem r ON r.inspection_id = i.id
"""


@dataclass
class Tally:
    fault: str
    sent: int = 0
    acknowledged: int = 0
    decided_by_model: int = 0
    fail_safe: int = 0
    lost: int = 0
    duplicated: int = 0
    connection_errors: int = 0
    unavailable_503: int = 0
    bad_answers: int = 0  # an HTML page, a 500, anything but an answer or a JSON 503
    hangs: int = 0  # no answer within the client's timeout
    slowest_s: float = 0.0
    late_fail_safe: int = 0  # fail-safe routed more than 5 s after the dependency was back
    fail_safe_accepts: int = 0
    model_after_recovery: int = 0  # decided by the model more than 5 s after recovery
    problems: list[str] = field(default_factory=list)


def tally(fault: str, fleet: Fleet, db_url: str, *, back_at_wall: float | None) -> Tally:
    """Count the run, and name each item that broke a promise in `problems`."""
    t = Tally(fault=fault, sent=len(set(fleet.sent)))
    answers = fleet.answers()
    t.acknowledged = len(answers)
    for attempt in fleet.attempts:
        t.slowest_s = max(t.slowest_s, round(attempt.seconds, 2))
        if attempt.kind == "connection_error":
            t.connection_errors += 1
        elif attempt.kind == "unavailable":
            t.unavailable_503 += 1
        elif attempt.kind == "timeout":
            t.hangs += 1
            t.problems.append(f"{attempt.external_id}: no answer in {attempt.seconds:.1f}s")
        elif attempt.kind == "other":
            t.bad_answers += 1
            t.problems.append(
                f"{attempt.external_id}: HTTP {attempt.status} {attempt.content_type} "
                f"{attempt.body[:120]!r}"
            )
    rows: dict[str, list[tuple]] = {}
    with psycopg.connect(db_url) as conn:
        for row in conn.execute(ROWS):
            rows.setdefault(row[0], []).append(row)
    for external_id in sorted(set(fleet.sent)):
        _check_item(t, external_id, answers.get(external_id), rows.get(external_id, []))
    for row in (r for found in rows.values() for r in found):
        _count_routing(t, row, back_at_wall)
    return t


def _check_item(t: Tally, external_id: str, answer: dict | None, rows: list[tuple]) -> None:
    if answer is None:
        t.lost += 1
        t.problems.append(f"{external_id}: sent, never acknowledged")
        return
    if len(rows) > 1:
        t.duplicated += 1
        t.problems.append(f"{external_id}: {len(rows)} rows")
        return
    if not rows:
        t.lost += 1
        t.problems.append(f"{external_id}: acknowledged, not in the database")
        return
    _, status, _, _, outcome, _, in_queue, state = rows[0]
    decided = status == "decided" and outcome is not None and not in_queue
    waiting = status == "in_review" and outcome is None and in_queue and state == "open"
    if not (decided or waiting):
        t.lost += 1
        t.problems.append(f"{external_id}: neither decided once nor in the queue ({status})")
    elif answer.get("decision") != (outcome or "review") or answer.get("id") is None:
        t.duplicated += 1
        t.problems.append(f"{external_id}: answered {answer.get('decision')}, stored {outcome}")


def _count_routing(t: Tally, row: tuple, back_at_wall: float | None) -> None:
    external_id, _, reason, routed_at, outcome, decided_by, _, _ = row
    if decided_by == "model":
        t.decided_by_model += 1
        if back_at_wall is not None and routed_at.timestamp() > back_at_wall + 5.0:
            t.model_after_recovery += 1
    if not reason:
        return
    t.fail_safe += 1
    if outcome == "accept":
        t.fail_safe_accepts += 1
        t.problems.append(f"{external_id}: the fail-safe accepted")
    if back_at_wall is not None and routed_at.timestamp() > back_at_wall + 5.0:
        t.late_fail_safe += 1
        late = routed_at.timestamp() - back_at_wall
        t.problems.append(f"{external_id}: fail-safe ({reason}) {late:.1f}s after recovery")


COLUMNS = ("sent", "acknowledged", "decided_by_model", "fail_safe", "lost", "duplicated",
           "connection_errors", "unavailable_503", "bad_answers", "hangs", "slowest_s")  # fmt: skip


def table(tallies: list[Tally]) -> str:
    heads = ("fault", *COLUMNS)
    lines = [[t.fault, *(str(getattr(t, c)) for c in COLUMNS)] for t in tallies]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(heads)]
    out = [" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def write(tallies: list[Tally], path: Path) -> None:
    path.write_text(json.dumps([asdict(t) for t in tallies], indent=2))
