import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_queues: set[str] = set()


@app.on_after_finalize.connect
def _schedule_periodic_jobs(sender, **kwargs):
    """What `celery -A loupe beat` sends: loupe.periodic's list, the embedded mode's too."""
    from loupe.periodic import periodic_jobs

    for job in periodic_jobs():
        options = {"queue": job.queue} if job.queue else {}
        sender.add_periodic_task(job.every_s, job.task.s(), name=job.task.name, **options)


@signals.celeryd_init.connect
def _remember_queues(sender=None, options=None, **kwargs):
    # read in the main process before the pool forks, so each child sees it
    asked = (options or {}).get("queues") or []
    _queues.update(name.strip() for name in asked if name.strip())


@signals.worker_process_init.connect
def _prepare_to_judge(**kwargs):
    """A prefork child of a worker that judges items routes overdue items and loads the lines'
    models before it takes any item (other pools skip this: run inference prefork).

    The pool sends a child no task until this returns, so a child that replaces one that died
    (killed mid-task, a hard time limit) leaves items to its warm siblings while it loads,
    instead of taking them and missing their budgets. CELERY_WORKER_PROC_ALIVE_TIMEOUT must
    outlast the load."""
    from django.conf import settings

    if not _queues or settings.CELERY_TASK_DEFAULT_QUEUE in _queues:
        from loupe.startup import prepare_before_taking_items

        prepare_before_taking_items()
    if (
        not _queues
        or {settings.CELERY_TASK_DEFAULT_QUEUE, settings.LOUPE_CHALLENGER_QUEUE} & _queues
    ):
        from inspection import serving_news

        # a challenger started, stepped or promoted is loaded in this process at once
        serving_news.listen()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _drop_dead_database_connections(sender=None, **kwargs):
    """What Django does around each request, around each task in a worker: close a connection
    that failed or outlived CONN_MAX_AGE, and health-check the kept one before its next query.
    Without it a worker keeps a connection PostgreSQL dropped (a restart) and fails every
    task until CELERY_DB_REUSE_MAX tasks have run. An eager task runs inside its caller's
    request or transaction, whose connection is not the task's to close."""
    if sender is None or getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


# Metrics (loupe.common.metrics): each worker writes its figures into its own folder, emptied
# when it starts; its pool processes report busy time per task and, every few seconds, that
# they are alive and their memory. Eager tasks run inside a web process: not a worker's work.
_task_started: dict[str, float] = {}
HEARTBEAT_S = 5.0


def _queue_label() -> str:
    from django.conf import settings

    return ",".join(sorted(_queues)) or settings.CELERY_TASK_DEFAULT_QUEUE


@signals.celeryd_init.connect
def _own_metrics_folder(sender=None, **kwargs):
    # in the main process, before the pool forks: the children inherit the folder
    from loupe.common import metrics_files

    metrics_files.use_folder(f"worker-{metrics_files.folder_name(str(sender))}", empty=True)


@signals.worker_process_init.connect
def _report_alive(**kwargs):
    import threading
    import time

    from loupe.common import metrics

    queue = _queue_label()

    def beat() -> None:
        while True:
            metrics.record_worker_alive(queue=queue)
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=beat, name="loupe-metrics-heartbeat", daemon=True).start()


@signals.worker_process_shutdown.connect
def _forget_live_gauges(pid=None, **kwargs):
    from loupe.common import metrics

    metrics.mark_process_dead(pid or os.getpid())


@signals.task_prerun.connect
def _start_busy_clock(task_id=None, task=None, **kwargs):
    if task is not None and not getattr(task.request, "is_eager", False):
        import time

        _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _count_busy_time(task_id=None, task=None, state=None, **kwargs):
    started = _task_started.pop(task_id, None)
    if started is None or task is None:
        return
    import time

    from loupe.common import metrics

    metrics.record_task(
        queue=_queue_label(),
        task=task.name,
        seconds=time.perf_counter() - started,
        state=str(state or "unknown").lower(),
    )
