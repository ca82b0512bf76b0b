"""/metrics: Loupe's figures in Prometheus' text format, for a scraper, not for people.

Two kinds of figures:
- what processes count as they work (loupe.common.metrics): every gunicorn and Celery pool
  process writes its own files under LOUPE_METRICS_DIR (one folder per service,
  loupe.common.metrics_files); a scrape merges them all, after forgetting the live gauges of
  processes that died without saying so (SIGKILL, a hard time limit);
- what the database says now (`DatabaseFigures`), computed at scrape time and never stored per
  process: lines, review backlog and time to decision, decisions by who decided, agreement,
  escapes, and each queue's waiting work and oldest age (read from the tables, so it works
  with any broker), plus the broker's own queue lengths where the broker is Redis.

Access: a Bearer token equal to LOUPE_METRICS_TOKEN, or, without one, a request straight from
an address in LOUPE_METRICS_ALLOW. A request that came through a proxy (it carries a
forwarding header) is never judged by the proxy's address. A wrong token is 401, anything
else not allowed 403, both JSON.
"""

import hmac
import ipaddress
import logging
import os
import statistics
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.db.models import Count, F, Min, Q
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from loupe.common import metrics

logger = logging.getLogger(__name__)

FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")
TIME_TO_DECISION_ROWS = 20_000  # the latest human decisions of a window a scrape reads


def _refused(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def scrape_refusal(request) -> JsonResponse | None:
    """Why this request may not read /metrics, as its answer; None when it may."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = settings.LOUPE_METRICS_TOKEN
        if (
            scheme.lower() != "bearer"
            or not expected
            or not hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            return _refused(401, "invalid_token", "the metrics token is not valid")
        return None
    if not any(request.META.get(name) for name in FORWARDING_HEADERS):
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in settings.LOUPE_METRICS_ALLOW):
            return None
    return _refused(
        403,
        "forbidden",
        "send the metrics token as 'Authorization: Bearer <token>', or scrape from an "
        "address in LOUPE_METRICS_ALLOW",
    )


@login_not_required
@never_cache
@require_safe
def metrics_view(request):
    refusal = scrape_refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    registry.register(ProcessFiles(Path(settings.LOUPE_METRICS_DIR)))
    registry.register(DatabaseFigures())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class ProcessFiles:
    """Every service folder's files, merged as one multiprocess registry would."""

    def __init__(self, root: Path):
        self.root = root

    def forget_dead_processes(self) -> None:
        for path in self.root.glob("*/gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _is_alive(int(pid)):
                metrics.mark_process_dead(int(pid), path.parent)

    def collect(self):
        self.forget_dead_processes()
        files = [str(path) for path in self.root.glob("*/*.db")]
        merged = MultiProcessCollector.merge(files, accumulate=True)
        yield from merged
        # a figure no process has recorded yet is still named (HELP and TYPE, no sample), as
        # a single process's registry does: dashboards and rules find every name from the start
        seen = {family.name for family in merged}
        for family in metrics.declared_families():
            if family.name not in seen:
                yield family


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class DatabaseFigures:
    """Figures read from the database at scrape time. A database that does not answer
    gives loupe_metrics_database_up 0 and none of them; the process figures still come."""

    def collect(self):
        started = time.perf_counter()
        up = _gauge("loupe_metrics_database_up", "Whether the database figures could be read.", [])
        try:
            families = list(self.families())
        except DatabaseError:
            logger.exception("metrics: the database figures could not be read")
            families = []
        up.add_metric([], 1.0 if families else 0.0)
        yield from families
        yield up
        yield from broker_figures()
        took = _gauge(
            "loupe_metrics_scrape_seconds", "Time to read the database and broker figures.", []
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def families(self):
        from inspection.models import Line

        now = timezone.now()
        since = now - timedelta(seconds=settings.LOUPE_METRICS_WINDOW_S)
        lines = list(
            Line.objects.values(
                "id",
                "name",
                "automation_level",
                "agreement_target",
                "latency_budget_ms",
                "active_model__name",
            )
        )
        names = {line["id"]: line["name"] for line in lines}
        window = _gauge(
            "loupe_metrics_window_seconds",
            "The window the *_window figures, time to decision, auto-decision share and "
            "agreement cover (LOUPE_METRICS_WINDOW_S).",
            [],
        )
        window.add_metric([], settings.LOUPE_METRICS_WINDOW_S)
        yield window
        yield from line_figures(lines)
        yield from review_figures(names, now=now, since=since)
        yield from decision_figures(now=now, since=since)
        yield from agreement_figures(since=since)
        yield escape_figures()
        yield from queue_figures(names, now=now)
        yield alert_figures()


def line_figures(lines: list[dict]):
    info = _gauge(
        "loupe_line_info",
        "1 per line, with its automation level and active model version.",
        ["line", "level", "model_version"],
    )
    target = _gauge(
        "loupe_line_agreement_target", "The line's agreement target (0 to 1).", ["line"]
    )
    budget = _gauge(
        "loupe_line_latency_budget_seconds", "The line's latency budget per item.", ["line"]
    )
    for line in lines:
        info.add_metric(
            [line["name"], line["automation_level"], line["active_model__name"] or ""], 1.0
        )
        target.add_metric([line["name"]], line["agreement_target"])
        budget.add_metric([line["name"]], line["latency_budget_ms"] / 1000.0)
    yield from (info, target, budget)


def review_figures(names: dict[int, str], *, now, since):
    from inspection.models import DecidedBy, Decision, ReviewItem, ReviewState

    backlog = _gauge(
        "loupe_review_backlog_items",
        "Open review items, by why they are there (every_item, unsure, audit, blind, fail_safe).",
        ["line", "reason"],
    )
    oldest = _gauge(
        "loupe_review_oldest_open_age_seconds",
        "Age of the line's oldest open review item (0 when none).",
        ["line"],
    )
    oldest_by_line = dict.fromkeys(names.values(), 0.0)
    open_items = (
        ReviewItem.objects.filter(state=ReviewState.OPEN)
        .values("inspection__line_id", "reason")
        .annotate(count=Count("id"), first=Min("created_at"))
    )
    for row in open_items:
        line = names.get(row["inspection__line_id"], "")
        backlog.add_metric([line, row["reason"]], row["count"])
        age = (now - row["first"]).total_seconds()
        oldest_by_line[line] = max(oldest_by_line.get(line, 0.0), age)
    for line, age in oldest_by_line.items():
        oldest.add_metric([line], age)
    yield from (backlog, oldest)

    waits = _gauge(
        "loupe_review_time_to_decision_seconds",
        "From an item's arrival to a human's decision, for human decisions final in the "
        "window: median and 95th percentile.",
        ["line", "quantile"],
    )
    rows = (
        Decision.objects.filter(decided_by=DecidedBy.HUMAN, final_at__gte=since, final_at__lte=now)
        .annotate(wait=F("decided_at") - F("inspection__received_at"))
        .order_by("-final_at")
        .values_list("inspection__line_id", "wait")[:TIME_TO_DECISION_ROWS]
    )
    by_line = defaultdict(list)
    for line_id, wait in rows:
        by_line[names.get(line_id, "")].append(wait.total_seconds())
    for line, seconds in sorted(by_line.items()):
        seconds.sort()
        waits.add_metric([line, "0.5"], statistics.median(seconds))
        waits.add_metric([line, "0.95"], seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))])
    yield waits


def decision_figures(*, now, since):
    from inspection.models import DecidedBy, Decision

    counts = _gauge(
        "loupe_decisions_window",
        "Final decisions in the window, by who decided (model, human, fail_safe).",
        ["line", "decided_by"],
    )
    share = _gauge(
        "loupe_auto_decision_share",
        "Share of the window's final decisions the model took by itself.",
        ["line"],
    )
    totals = defaultdict(lambda: defaultdict(int))
    rows = (
        Decision.objects.filter(final_at__gte=since, final_at__lte=now)
        .values("inspection__line__name", "decided_by")
        .annotate(count=Count("id"))
    )
    for row in rows:
        totals[row["inspection__line__name"]][row["decided_by"]] += row["count"]
    for line, by in sorted(totals.items()):
        for decided_by, count in sorted(by.items()):
            counts.add_metric([line, decided_by], count)
        share.add_metric([line], by.get(DecidedBy.MODEL, 0) / sum(by.values()))
    yield from (counts, share)


def agreement_figures(*, since):
    from inspection.models import ReviewItem, ReviewState

    labels = ["line", "model_version", "evidence"]
    ratio = _gauge(
        "loupe_agreement_ratio",
        "Human-model agreement on items received in the window and decided by a human: "
        "evidence unbiased (the human did not see the model: shadow, audit, blind) or shown "
        "(assist, partial's unsure items).",
        labels,
    )
    items = _gauge("loupe_agreement_items_window", "Items behind loupe_agreement_ratio.", labels)
    rows = (
        ReviewItem.objects.filter(
            inspection__received_at__gte=since,
            state=ReviewState.DECIDED,
            model_agrees__isnull=False,
        )
        .values("inspection__line__name", "inspection__model_version__name", "shows_model")
        .annotate(count=Count("id"), agree=Count("id", filter=Q(model_agrees=True)))
    )
    for row in rows:
        key = [
            row["inspection__line__name"],
            row["inspection__model_version__name"] or "",
            "shown" if row["shows_model"] else "unbiased",
        ]
        ratio.add_metric(key, row["agree"] / row["count"])
        items.add_metric(key, row["count"])
    yield from (ratio, items)


def escape_figures() -> CounterMetricFamily:
    from inspection.models import Escape

    escapes = CounterMetricFamily(
        "loupe_escapes",
        "Defective items the model accepted, found by an audit or reported later (all time).",
        labels=["line", "model_version", "source"],
    )
    rows = Escape.objects.values("line__name", "model_version__name", "source").annotate(
        count=Count("id")
    )
    for row in rows:
        escapes.add_metric(
            [row["line__name"], row["model_version__name"] or "", row["source"]], row["count"]
        )
    return escapes


def alert_figures() -> GaugeMetricFamily:
    from monitoring.alerts import unresolved_alerts

    alerts = _gauge(
        "loupe_open_alerts",
        "Unresolved alerts (open or acknowledged) per line, rule metric and state.",
        ["line", "metric", "state"],
    )
    rows = unresolved_alerts().values("line__name", "metric", "state").annotate(n=Count("id"))
    for row in rows.order_by():
        alerts.add_metric([row["line__name"], row["metric"], row["state"]], row["n"])
    return alerts


def _waiting_work(names: dict[int, str], now):
    """(queue, line, count, oldest) of the work waiting for a worker, per queue and line."""
    from datasets.models import BatchPrediction, DatasetExport, DatasetImport, ExportImportState
    from inspection.models import Inspection, InspectionStatus
    from ml.models import PipelineRun, PipelineRunState
    from ml.pipeline.step_task import TRAINING_QUEUE

    queued = ExportImportState.QUEUED
    sources = [
        (
            settings.CELERY_TASK_DEFAULT_QUEUE,
            Inspection.objects.filter(status=InspectionStatus.RECEIVED),
            "received_at",
        ),
        (settings.LOUPE_DATASETS_QUEUE, DatasetImport.objects.filter(state=queued), "created_at"),
        (settings.LOUPE_BATCH_QUEUE, BatchPrediction.objects.filter(state=queued), "created_at"),
        (
            TRAINING_QUEUE,
            PipelineRun.objects.filter(state=PipelineRunState.PENDING),
            "created_at",
        ),
    ]
    for queue, queryset, arrived in sources:
        rows = queryset.values("line_id").annotate(count=Count("id"), first=Min(arrived))
        for row in rows:
            yield queue, names.get(row["line_id"], ""), row["count"], row["first"]
    exports = DatasetExport.objects.filter(state=queued).aggregate(
        count=Count("id"), first=Min("created_at")
    )
    if exports["count"]:
        yield settings.LOUPE_DATASETS_QUEUE, "", exports["count"], exports["first"]


def queue_figures(names: dict[int, str], *, now):
    depth = _gauge(
        "loupe_queue_depth",
        "Work waiting for a worker, read from the database: items not yet routed (the "
        "inference queue), queued imports and exports, batch predictions, pending training "
        "runs.",
        ["queue", "line"],
    )
    oldest = _gauge(
        "loupe_queue_oldest_age_seconds",
        "Age of the oldest waiting work per queue and line (0 when none waits).",
        ["queue", "line"],
    )
    figures = {(settings.CELERY_TASK_DEFAULT_QUEUE, line): (0, None) for line in names.values()}
    for queue, line, count, first in _waiting_work(names, now):
        previous, earliest = figures.get((queue, line), (0, None))
        figures[(queue, line)] = (previous + count, min(filter(None, (earliest, first))))
    for (queue, line), (count, first) in sorted(figures.items()):
        depth.add_metric([queue, line], count)
        oldest.add_metric([queue, line], (now - first).total_seconds() if first else 0.0)
    yield from (depth, oldest)


def broker_queues() -> list[str]:
    from ml.pipeline.step_task import TRAINING_QUEUE

    names = [
        settings.CELERY_TASK_DEFAULT_QUEUE,
        settings.LOUPE_DATASETS_QUEUE,
        settings.LOUPE_BATCH_QUEUE,
        TRAINING_QUEUE,
        *settings.LOUPE_HEALTH_QUEUES,
    ]
    return list(dict.fromkeys(names))


def broker_figures():
    """Messages waiting in each queue of a Redis broker (LLEN); nothing for another broker."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://")):
        return
    import redis

    family = _gauge(
        "loupe_broker_queue_messages",
        "Messages waiting in the broker's queue (Redis LLEN; taken but unacknowledged "
        "messages are not counted).",
        ["queue"],
    )
    up = _gauge("loupe_broker_up", "Whether the broker answered the scrape.", [])
    try:
        client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
        with client.pipeline(transaction=False) as pipe:
            names = broker_queues()
            for name in names:
                pipe.llen(name)
            lengths = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("metrics: the broker did not answer (%s)", exc)
        up.add_metric([], 0.0)
        yield up
        return
    for name, length in zip(names, lengths, strict=True):
        family.add_metric([name], length)
    up.add_metric([], 1.0)
    yield from (family, up)
