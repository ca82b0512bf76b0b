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
    """A prefork child of a worker that judges items starts routing overdue items and loading
    the lines' models in a background thread (other pools skip this: run inference prefork)."""
    from django.conf import settings

    if not _queues or settings.CELERY_TASK_DEFAULT_QUEUE in _queues:
        from loupe.startup import prepare_in_background

        prepare_in_background()
