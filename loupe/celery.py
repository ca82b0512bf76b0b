import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_queues: set[str] = set()


@signals.celeryd_init.connect
def _remember_queues(sender=None, options=None, **kwargs):
    # read in the main process before the pool forks, so each child sees it
    asked = (options or {}).get("queues") or []
    _queues.update(name.strip() for name in asked if name.strip())


@signals.worker_process_init.connect
def _warm_up_models(**kwargs):
    """A worker that judges items loads the lines' models before the first item arrives."""
    from django.conf import settings

    if not _queues or settings.CELERY_TASK_DEFAULT_QUEUE in _queues:
        from ml.inference import warm_up_in_background

        warm_up_in_background()
