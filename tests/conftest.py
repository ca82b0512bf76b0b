"""Fixtures shared by the Django tests (tests/ml_engine runs alone, without Django)."""

import os
import shutil

import pytest

# The suite runs Loupe's production mode (PostgreSQL, Redis) over plain http, without the TLS
# proxy a real install has, so it turns the https redirect off: here for the processes tests
# start (workers, gunicorn), and in _plain_http for this one, whenever its settings were read.
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")


def pytest_configure(config):
    """Under pytest -n each worker process has its own test database (pytest-django's _gwN
    suffix) and, set here, its own Redis database: the Celery workers and gunicorn a test
    starts inherit it, so no worker takes, or flushes, another's tasks."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not config.pluginmanager.hasplugin("django"):
        return
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    from loupe.celery import app

    url = urlsplit(settings.CELERY_BROKER_URL)
    if url.scheme != "redis":
        return
    own = urlunsplit(url._replace(path=f"/{14 - int(worker.removeprefix('gw'))}"))
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        os.environ[name] = own
        setattr(settings, name, own)
    app.conf.broker_url = app.conf.result_backend = own
    # two processes on two cores: a training in one must not take both cores' threads and
    # stall the other (torch spins while it waits for a busy core)
    os.environ["LOUPE_TRAIN_THREADS"] = "1"
    settings.LOUPE_TRAIN_THREADS = 1


def pytest_collection_modifyitems(items):
    """The few tests that take minutes (marked slow) start first: under pytest -n the other
    worker runs the rest beside them, instead of one worker finishing alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def loupe_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("loupe")
    (root / "media").mkdir()
    (root / "models").mkdir()
    return root


def _django_enabled(request) -> bool:
    return request.config.pluginmanager.hasplugin("django")


@pytest.fixture(autouse=True, scope="session")
def _plain_http(request):
    if not _django_enabled(request):
        yield
        return
    from django.conf import settings
    from django.test.utils import override_settings

    # PBKDF2 takes 0.57 s a password here, paid on every user a test creates and every login:
    # most of the suite's time per test. MD5 hashes the suite's own users (never a real one);
    # PBKDF2 stays listed, so a password hashed by a process the suite starts still checks.
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    with override_settings(SECURE_SSL_REDIRECT=False, PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(autouse=True)
def _loupe_storage(request, loupe_dirs):
    if not _django_enabled(request):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = loupe_dirs / "media"
    settings.LOUPE_MODEL_DIR = loupe_dirs / "models"
    from inspection import inference

    inference.forget_loaded_models()
    yield


@pytest.fixture(autouse=True)
def _eager_tasks(request):
    """Tasks run in-process, except in integration tests, which use a real worker."""
    if not _django_enabled(request):
        yield
        return
    from loupe.celery import app

    eager = request.node.get_closest_marker("integration") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory):
    """A small model trained for one epoch on generated images: real, fast, not accurate."""
    import torch
    from django.conf import settings

    from ml.engine.generator import SurfaceConfig, generate_dataset
    from ml.engine.train import TrainConfig, train_model

    torch.set_num_threads(settings.LOUPE_TRAIN_THREADS)
    root = tmp_path_factory.mktemp("tiny-model")
    generate_dataset(root / "data", count=48, seed=3, config=SurfaceConfig())
    result = train_model(
        root / "data", root / "tiny.pt", config=TrainConfig(epochs=1, holdout_fraction=0.25)
    )
    return result.artifact_path


@pytest.fixture
def model_version(db, trained_artifact, settings):
    from ml.services import register_model_version

    target = settings.LOUPE_MODEL_DIR / "tiny.pt"
    if not target.exists():
        shutil.copy(trained_artifact, target)
    return register_model_version(artifact=target, name="tiny")


@pytest.fixture
def make_line(db):
    from inspection import services

    def make(name="line-a", level="human_only", **kwargs):
        return services.create_line(name=name, level=level, **kwargs)

    return make


@pytest.fixture
def station_with_token(db):
    from inspection import services

    def make(line, name="cam-1"):
        return services.create_station(line=line, name=name)

    return make
