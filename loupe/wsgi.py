import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings")
application = get_wsgi_application()


def _warm_up_if_embedded() -> None:
    from django.conf import settings

    # embedded mode: this process runs the tasks itself, so it loads the lines' models now
    # rather than on the first station POST, which would miss its budget while loading
    if settings.CELERY_TASK_ALWAYS_EAGER:
        from ml.inference import warm_up_in_background

        warm_up_in_background()


_warm_up_if_embedded()
