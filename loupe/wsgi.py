import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings")
application = get_wsgi_application()


def _prepare_if_embedded() -> None:
    from django.conf import settings

    # embedded mode: this process runs the tasks itself, so it loads the lines' models now
    # rather than on the first station POST, which would miss its budget while loading
    # (and routes what a previous run left unrouted)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        from loupe.startup import prepare_in_background, run_periodic_jobs_in_background

        prepare_in_background()
        # and what Celery beat does in production: overdue routing, expiry, orphans
        run_periodic_jobs_in_background()


_prepare_if_embedded()
