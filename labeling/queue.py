"""The labeling queue: the items of each line worth a labeler's boxes next, and who works them.

What goes on it (labeling.queue_sources syncs the first three, labeling.candidates the last):
audit escapes, review/editor and review/model disagreements, defective labels without boxes,
batch predictions' images (datasets calls add_to_queue), and active learning's picks among
recent unlabeled items. One open entry per inspection (a partial unique index); an item that
turns up from a more urgent source moves up to that source's kind.

Claims work as the review queue's: a conditional UPDATE that one labeler wins; a claim lapses
after LOUPE_REVIEW_CLAIM_S without a keep-alive. An entry is done when a revision of its
inspection is saved in the editor (save_annotation calls note_editor_save).
"""

import json
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from inspection.models import Inspection
from labeling import candidates, queue_sources
from labeling.models import (
    ACTIVE_LEARNING_KINDS,
    PRIORITY,
    AnnotationRevision,
    QueueEntry,
    QueueKind,
    QueueRefresh,
    QueueState,
)
from loupe.common.errors import InvalidInput

# how many open entries a claim tries before it gives up on a burst of competing labelers
CLAIM_CANDIDATES = 20


# Adding -------------------------------------------------------------------------------------


def _check_details(details) -> dict:
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise InvalidInput("details must be a JSON object", field="details")
    try:
        json.dumps(details, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"details must be plain JSON: {error}", field="details") from error
    return details


def add_entries(rows: list[tuple[Inspection | int, int, str, float, dict]]) -> int:
    """Put items on their lines' queues: rows of (inspection, line_id, kind, score, details).

    An item with an open entry of a less urgent kind moves up to this kind (its claim is
    kept); one already open at this or a more urgent kind stays as it is. Returns how many
    items are newly on the queue at this kind. Safe to repeat and to run concurrently: the
    partial unique index turns a second insert for the same item into a no-op.
    """
    if not rows:
        return 0
    by_id = {}
    for inspection, line_id, kind, score, details in rows:
        pk = inspection if isinstance(inspection, int) else inspection.pk
        by_id[pk] = (line_id, QueueKind(kind), float(score), details)
    changed = 0
    started = timezone.now()
    with transaction.atomic():
        open_entries = dict(
            QueueEntry.objects.filter(state=QueueState.OPEN, inspection_id__in=list(by_id))
            .select_for_update()
            .values_list("inspection_id", "priority")
        )
        new = []
        for pk, (line_id, kind, score, details) in by_id.items():
            priority = PRIORITY[kind]
            if pk not in open_entries:
                new.append(
                    QueueEntry(
                        line_id=line_id,
                        inspection_id=pk,
                        kind=kind,
                        priority=priority,
                        score=score,
                        details=details,
                    )
                )
            elif open_entries[pk] < priority:
                changed += QueueEntry.objects.filter(
                    inspection_id=pk, state=QueueState.OPEN
                ).update(kind=kind, priority=priority, score=score, details=details)
        # ON CONFLICT DO NOTHING: an entry another process opened meanwhile wins
        created = QueueEntry.objects.bulk_create(new, ignore_conflicts=True)
    return changed + _count_inserted(created, started)


def _count_inserted(created: list[QueueEntry], since) -> int:
    # bulk_create with ignore_conflicts returns every object, inserted or not: count the
    # ones open now at the kind they were asked for, opened since this call began
    if not created:
        return 0
    kinds = {entry.inspection_id: entry.kind for entry in created}
    rows = QueueEntry.objects.filter(
        state=QueueState.OPEN, inspection_id__in=list(kinds), created_at__gte=since
    ).values_list("inspection_id", "kind")
    return sum(1 for pk, kind in rows if kinds[pk] == kind)


def add_to_queue(*, inspections, kind: str, details: dict | None = None) -> int:
    """Put these inspections on their lines' labeling queues as `kind`, each with a copy of
    `details` (JSON: e.g. the batch job, the model's boxes); return how many are newly on it.

    Raises InvalidInput for an unknown kind or details that are not an object (nothing
    stored). Safe to repeat: an item already open at this or a more urgent kind is left.
    """
    if kind not in QueueKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(QueueKind.values)}", field="kind")
    details = _check_details(details)
    rows = [
        (inspection, inspection.line_id, kind, 0.0, dict(details)) for inspection in inspections
    ]
    return add_entries(rows)


def replace_active_learning_entries(*, line, picks: list[tuple[int, str, float, dict]]) -> dict:
    """Make active learning's open entries of the line these picks: (inspection id, kind,
    score, details). Open entries it no longer picks go, unless someone holds them (a claimed
    item stays until it is done or lapses); picks already open get their new score.
    Returns {"added", "updated", "removed"}."""
    picked = {pk: (kind, score, details) for pk, kind, score, details in picks}
    cutoff = claim_cutoff()
    stale = QueueEntry.objects.filter(
        line=line, state=QueueState.OPEN, kind__in=ACTIVE_LEARNING_KINDS
    ).exclude(inspection_id__in=list(picked))
    removed, _ = stale.filter(Q(assigned_to__isnull=True) | Q(claimed_at__lt=cutoff)).delete()
    updated = 0
    for entry in QueueEntry.objects.filter(
        line=line,
        state=QueueState.OPEN,
        kind__in=ACTIVE_LEARNING_KINDS,
        inspection_id__in=list(picked),
    ):
        kind, score, details = picked.pop(entry.inspection_id)
        updated += QueueEntry.objects.filter(pk=entry.pk, state=QueueState.OPEN).update(
            kind=kind, score=score, details=details
        )
    added = add_entries(
        [(pk, line.pk, kind, score, details) for pk, (kind, score, details) in picked.items()]
    )
    return {"added": added, "updated": updated, "removed": removed}


def sync_line_sources(line) -> dict:
    """Bring the line's flagged items onto its queue (escapes, disagreements, box-less labels)
    and dismiss the entries whose reason is gone. Database work only: cheap enough to run
    every minute, so an escape is on the queue soon after the audit found it. Returns
    {"dismissed": n, "escape": n, "disagreement": n, "boxless": n}. Safe to repeat."""
    synced: dict = {
        "dismissed": queue_sources.gone_entries(line).update(
            state=QueueState.DISMISSED, done_at=timezone.now()
        )
    }
    for kind, rows_of in queue_sources.SOURCES:
        synced[kind.value] = synced.get(kind.value, 0) + add_entries(rows_of(line))
    return synced


def refresh_line_queue(line, *, pool=candidates.DEFAULT_POOL, strategy=None) -> dict:
    """Sync the line's sources, then let active learning replace its picks, and record the
    run (QueueRefresh, which the page shows).

    Returns what changed: sync_line_sources' counts and "active_learning": {"status", "model",
    "pool_size", "reference_size", "added", "updated", "removed"}. Safe to repeat and to run
    beside labelers: claimed entries are never taken away. Without a model (or with one that
    fails to load) active learning's entries stay as they were.
    """
    result = sync_line_sources(line)
    found = candidates.find_candidates(line, pool=pool, strategy=strategy)
    changes = {"added": 0, "updated": 0, "removed": 0}
    if found.status in ("picked", "empty_pool"):
        changes = replace_active_learning_entries(line=line, picks=found.picks)
    result["active_learning"] = {
        "status": found.status,
        "model": found.model,
        "pool_size": found.pool_size,
        "reference_size": found.reference_size,
        **changes,
    }
    QueueRefresh.objects.update_or_create(
        line=line,
        defaults={"refreshed_at": timezone.now(), "result": result, "strategy": found.strategy},
    )
    return result


# Claims -------------------------------------------------------------------------------------


def claim_cutoff():
    return timezone.now() - timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S)


def _claimable_by(user) -> Q:
    """Open, and free: never claimed, claim lapsed, or already this user's."""
    return Q(state=QueueState.OPEN) & (
        Q(assigned_to__isnull=True) | Q(claimed_at__lt=claim_cutoff()) | Q(assigned_to=user)
    )


def claim_next(*, user, entries: QuerySet[QueueEntry], exclude=()) -> QueueEntry | None:
    """Claim the most urgent open entry of `entries` (the user's visible queue) for `user`.

    The entry the user already holds comes back first (a reloaded page gets its item back);
    `exclude` (entry ids) skips the ones the user put aside. Two labelers claiming at once
    never get the same entry: the claim is a conditional UPDATE that only one of them wins,
    and the loser moves on to the next one.
    """
    queue = entries.exclude(pk__in=list(exclude))
    mine = queue.filter(
        state=QueueState.OPEN, assigned_to=user, claimed_at__gte=claim_cutoff()
    ).order_by("claimed_at", "pk")
    ordered = queue.filter(_claimable_by(user)).order_by("-priority", "-score", "created_at", "pk")
    for candidate_ids in (
        mine.values_list("pk", flat=True)[:1],
        ordered.values_list("pk", flat=True)[:CLAIM_CANDIDATES],
    ):
        for pk in candidate_ids:
            won = QueueEntry.objects.filter(Q(pk=pk) & _claimable_by(user)).update(
                assigned_to=user, claimed_at=timezone.now()
            )
            if won:
                return QueueEntry.objects.select_related("inspection", "line").get(pk=pk)
    return None


def keep_claim(*, entry: QueueEntry, user) -> bool:
    """The labeler is still on the item: push its claim's expiry forward (and take it back
    if it lapsed and nobody else took it). False when the entry is done or someone else's."""
    return bool(
        QueueEntry.objects.filter(pk=entry.pk)
        .filter(_claimable_by(user))
        .update(assigned_to=user, claimed_at=timezone.now())
    )


def release_claim(*, entry: QueueEntry, user) -> bool:
    """Give an entry the user holds back to the queue (they left it or skipped it)."""
    return bool(
        QueueEntry.objects.filter(pk=entry.pk, state=QueueState.OPEN, assigned_to=user).update(
            assigned_to=None, claimed_at=None
        )
    )


def held_entry(*, inspection, user) -> QueueEntry | None:
    """The open entry of the inspection that the user holds or may take (a lapsed claim
    of their own), else None."""
    return QueueEntry.objects.filter(inspection=inspection).filter(_claimable_by(user)).first()


# Done ---------------------------------------------------------------------------------------


def note_editor_save(revision: AnnotationRevision, *, author) -> int:
    """A revision of the item was saved in the editor: its open entry is done, whoever held
    it (the item has the labels it was queued for). Runs in save_annotation's transaction."""
    return QueueEntry.objects.filter(
        inspection_id=revision.inspection_id, state=QueueState.OPEN
    ).update(state=QueueState.DONE, done_at=timezone.now(), done_by=author)


# Reading ------------------------------------------------------------------------------------


def open_entries(lines: QuerySet) -> QuerySet[QueueEntry]:
    return QueueEntry.objects.filter(line__in=lines, state=QueueState.OPEN)


def open_counts(lines: QuerySet) -> dict[int, dict[str, int]]:
    """Open entries per line and kind: {line_id: {kind: n}}."""
    counts: dict[int, dict[str, int]] = {}
    rows = open_entries(lines).values("line_id", "kind").annotate(n=Count("pk"))
    for row in rows:
        counts.setdefault(row["line_id"], {})[row["kind"]] = row["n"]
    return counts


def done_counts(*, user, since) -> dict[str, int]:
    """Entries the user finished (saved) since `since`, per kind."""
    rows = (
        QueueEntry.objects.filter(done_by=user, state=QueueState.DONE, done_at__gte=since)
        .values("kind")
        .annotate(n=Count("pk"))
    )
    return {row["kind"]: row["n"] for row in rows}
