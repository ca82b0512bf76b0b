"""The labeling queue's page and the JSON calls its scripts make. Rules live in labeling.queue;
lines and inspections come from inspection.selectors, so another line's item is a 404.

Progress is per login session: the session remembers when the labeler started and which
entries they skipped (a skipped entry does not come back to them in this session).
"""

import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from inspection.selectors import visible_inspections, visible_lines
from labeling import candidates, queue, tasks
from labeling.models import QueueKind, QueueRefresh
from loupe.common.errors import InvalidInput
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import CAN_LABEL, CAN_START_RETRAINING

SESSION_KEY = "labeling_queue"
MAX_SKIPPED = 500  # a session's skipped entries, newest kept
PREVIEW = 8  # the next entries shown per line
# Refreshing runs the line's model over its recent items: whoever may start retraining
# (supervisors, the data team, admins) may start it too.
CAN_REFRESH_QUEUE = CAN_START_RETRAINING


def _session(request) -> dict:
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict) or parse_datetime(str(state.get("since"))) is None:
        state = {"since": timezone.now().isoformat(), "skipped": []}
        request.session[SESSION_KEY] = state
    return state


def _skip(request, entry_id: int) -> None:
    state = _session(request)
    skipped = [pk for pk in state.get("skipped", []) if pk != entry_id][-MAX_SKIPPED + 1 :]
    state["skipped"] = [*skipped, entry_id]
    request.session[SESSION_KEY] = state


def _as_id(value) -> int | None:
    """A line id as typed in a query string or a JSON string: ASCII digits only (str.isdigit
    also takes "²", which int() refuses) and within the database's integer range."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value):
        return int(value)
    return None


def _chosen_lines(request, line_id):
    """The user's visible lines, or the one of them they chose (None: all)."""
    lines = visible_lines(request.user)
    if line_id in (None, ""):
        return lines
    if isinstance(line_id, str):
        line_id = _as_id(line_id)
    if isinstance(line_id, bool) or not isinstance(line_id, int) or not 0 < line_id < 2**63:
        raise InvalidInput("line must be a line id", field="line")
    return lines.filter(pk=line_id)


def progress(request, lines) -> dict:
    """What the page and the editor's bar show: done this session and open, per kind."""
    since = parse_datetime(_session(request)["since"])
    done = queue.done_counts(user=request.user, since=since)
    left: dict[str, int] = {}
    for counts in queue.open_counts(lines).values():
        for kind, n in counts.items():
            left[kind] = left.get(kind, 0) + n
    return {
        "done": sum(done.values()),
        "left": sum(left.values()),
        "kinds": [
            {"kind": kind, "label": label, "done": done.get(kind, 0), "left": left.get(kind, 0)}
            for kind, label in QueueKind.choices
        ],
    }


def label_url(entry, line_id=None) -> str:
    url = reverse("labeling:label", args=[entry.inspection_id]) + "?queue=1"
    return f"{url}&line={line_id}" if line_id else url


def entry_json(entry, line_id=None) -> dict:
    return {
        "id": entry.pk,
        "inspection_id": entry.inspection_id,
        "external_id": entry.inspection.external_id,
        "line": entry.line.name,
        "kind": entry.kind,
        "kind_label": entry.get_kind_display(),
        "why": entry.details.get("why", ""),
        "score": round(entry.score, 4),
        "label_url": label_url(entry, line_id),
    }


@require_GET
@permission_required(CAN_LABEL, raise_exception=True)
def queue_page(request):
    lines = visible_lines(request.user)
    chosen = _as_id(request.GET.get("line", ""))
    chosen = chosen if chosen is not None and lines.filter(pk=chosen).exists() else None
    counts = queue.open_counts(lines)
    cutoff = queue.claim_cutoff()
    refreshes = {r.line_id: r for r in QueueRefresh.objects.filter(line__in=lines)}
    rows = []
    for line in lines.select_related("active_model").order_by("name"):
        entries = list(
            queue.open_entries(lines.filter(pk=line.pk))
            .select_related("inspection", "assigned_to")
            .order_by("-priority", "-score", "created_at", "pk")[:PREVIEW]
        )
        for entry in entries:
            entry.claimed = entry.assigned_to_id is not None and entry.claimed_at >= cutoff
        line_counts = counts.get(line.pk, {})
        rows.append(
            {
                "line": line,
                "total": sum(line_counts.values()),
                "kinds": [(label, line_counts.get(kind, 0)) for kind, label in QueueKind.choices],
                "entries": entries,
                "refresh": refreshes.get(line.pk),
            }
        )
    # the strategy the newest refresh ranked by (the web process never imports torch)
    newest = max(refreshes.values(), key=lambda r: r.refreshed_at, default=None)
    strategy = dict(newest.strategy) if newest else {}
    pool = strategy.pop("pool", candidates.DEFAULT_POOL.to_dict())
    return render(
        request,
        "labeling/queue.html",
        {
            "rows": rows,
            "chosen": chosen,
            "progress": progress(request, lines.filter(pk=chosen) if chosen else lines),
            "strategy": strategy,
            "strategy_name": strategy.pop("name", ""),
            "pool": pool,
            "can_refresh": request.user.has_perm(CAN_REFRESH_QUEUE),
            "keep_claim_every_s": max(5, settings.LOUPE_REVIEW_CLAIM_S // 3),
        },
    )


@require_POST
@json_endpoint
@permission_required(CAN_LABEL, raise_exception=True)
def claim(request):
    """POST {line?: id, exclude?: [entry ids]}: claim the next entry; {entry, progress}."""
    exclude = request.json.get("exclude", [])
    if not isinstance(exclude, list) or not all(
        isinstance(pk, int) and not isinstance(pk, bool) for pk in exclude
    ):
        raise InvalidInput("exclude must be a list of queue entry ids", field="exclude")
    line_id = request.json.get("line")
    lines = _chosen_lines(request, line_id)
    skipped = _session(request).get("skipped", [])
    entry = queue.claim_next(
        user=request.user, entries=queue.open_entries(lines), exclude=[*exclude, *skipped]
    )
    return {
        "entry": entry_json(entry, line_id) if entry else None,
        "progress": progress(request, lines),
    }


def _inspection_or_404(request, pk):
    return get_object_or_404(visible_inspections(request.user), pk=pk)


@require_POST
@json_endpoint
@permission_required(CAN_LABEL, raise_exception=True)
def keep(request, pk):
    """The labeler is still on the item: keep (or take back) their claim of its entry."""
    entry = queue.held_entry(inspection=_inspection_or_404(request, pk), user=request.user)
    return {"kept": entry is not None and queue.keep_claim(entry=entry, user=request.user)}


@require_POST
@json_endpoint
@permission_required(CAN_LABEL, raise_exception=True)
def release(request, pk):
    entry = queue.held_entry(inspection=_inspection_or_404(request, pk), user=request.user)
    return {"released": entry is not None and queue.release_claim(entry=entry, user=request.user)}


@require_POST
@json_endpoint
@permission_required(CAN_LABEL, raise_exception=True)
def skip(request, pk):
    """Put the item back for others; it does not come back to this labeler this session."""
    entry = queue.held_entry(inspection=_inspection_or_404(request, pk), user=request.user)
    if entry is None:
        return {"skipped": False}
    queue.release_claim(entry=entry, user=request.user)
    _skip(request, entry.pk)
    return {"skipped": True}


@require_POST
@permission_required(CAN_REFRESH_QUEUE, raise_exception=True)
def refresh(request, pk):
    """Refresh one line's queue now, on a datasets worker; back to the queue page."""
    line = get_object_or_404(visible_lines(request.user), pk=pk)
    try:
        tasks.send_refresh(line.pk)
    except Exception:  # noqa: BLE001 - a broker that is down is told, not a 500
        messages.error(request, "Could not reach the workers; the queue refreshes by itself later.")
    else:
        messages.success(
            request, f"{line.name}: refreshing the queue; it takes a few seconds to a minute."
        )
    return redirect(f"{reverse('labeling:queue')}?line={line.pk}")


def label_queue_context(request, inspection) -> dict:
    """The editor's queue mode (?queue=1): the entry the labeler holds on this item, their
    progress, and what the editor's script calls to keep, skip and move to the next item."""
    line_id = _as_id(request.GET.get("line", ""))
    lines = _chosen_lines(request, line_id)
    entry = queue.held_entry(inspection=inspection, user=request.user)
    queue_url = reverse("labeling:queue") + (f"?line={line_id}" if line_id else "")
    return {
        "entry": entry,
        "progress": progress(request, lines),
        "queue_url": queue_url,
        "script": {
            "holds": entry is not None,
            "line": line_id,
            "claim_url": reverse("labeling:queue-claim"),
            "keep_url": reverse("labeling:queue-keep", args=[inspection.pk]),
            "release_url": reverse("labeling:queue-release", args=[inspection.pk]),
            "skip_url": reverse("labeling:queue-skip", args=[inspection.pk]),
            "queue_url": queue_url,
            "keep_every_s": max(5, settings.LOUPE_REVIEW_CLAIM_S // 3),
        },
    }
