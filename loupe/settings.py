"""Loupe settings, read from the environment (see .env.example).

Without DATABASE_URL and CELERY_BROKER_URL, Loupe runs embedded: SQLite and tasks executed
in-process under LOUPE_VAR_DIR (./var), so a first run needs no service and no variable; its
SECRET_KEY is generated once into var/secret_key. DEBUG is off unless DEBUG=1. With a database
or broker set (a production install), SECRET_KEY and ALLOWED_HOSTS must be set too.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from loupe.common import metrics_files
from loupe.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    secret_key_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("LOUPE_VAR_DIR", str(BASE_DIR / "var")))
EMBEDDED = not os.environ.get("DATABASE_URL") and not os.environ.get("CELERY_BROKER_URL")
if EMBEDDED:
    # a fresh clone has no var/: the SQLite file, media and models live there
    VAR_DIR.mkdir(parents=True, exist_ok=True)
# Prometheus figures of every process, one folder per service (loupe.common.metrics_files);
# set here, before anything imports prometheus_client, which picks its mode on import
LOUPE_METRICS_DIR = metrics_files.configure_default()

# the value .env.example shows: copying the example must not give a known key
PLACEHOLDER_SECRET_KEY = "change-me-to-a-long-random-string"
DEBUG = env_bool("DEBUG", False)
if os.environ.get("SECRET_KEY"):
    SECRET_KEY = os.environ["SECRET_KEY"]
    if not DEBUG and (SECRET_KEY == PLACEHOLDER_SECRET_KEY or SECRET_KEY.startswith("insecure")):
        raise ImproperlyConfiguredEnv(
            "SECRET_KEY is the example's placeholder: set a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    # sessions, password-reset links and CSRF tokens are signed with it (Django's deploy check
    # asks for 50 characters)
    if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
        raise ImproperlyConfiguredEnv(
            f"SECRET_KEY has {len(SECRET_KEY)} characters: set a random value of at least 50 "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
elif DEBUG:
    SECRET_KEY = "insecure-dev-key-only-for-debug"
elif EMBEDDED:
    SECRET_KEY = secret_key_file(VAR_DIR / "secret_key")
else:
    raise ImproperlyConfiguredEnv(
        "SECRET_KEY must be set: DATABASE_URL or CELERY_BROKER_URL is set, so this is not the "
        "embedded mode. Set SECRET_KEY and ALLOWED_HOSTS as .env.example shows (or unset both "
        "URLs to run embedded, with SQLite under LOUPE_VAR_DIR)."
    )
LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", LOCAL_HOSTS if DEBUG or EMBEDDED else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "ml",
    "inspection",
    "review",
    "labeling",
    "datasets",
    "demo",
    "monitoring",
    "accounts",  # last: its post_migrate hook needs every other app's permissions
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # every page needs a login except the login page and the station API (token auth)
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.middleware.IdleSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # last, as django-axes asks: it turns a lockout into the login page's answer
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "loupe.urls"
WSGI_APPLICATION = "loupe.wsgi.application"
ASGI_APPLICATION = "loupe.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.role",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'loupe.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

# Login throttling (django-axes): after LOUPE_LOGIN_FAILURE_LIMIT failed logins for one user
# name from one address, that pair is locked out for LOUPE_LOGIN_COOLOFF_MIN minutes. An admin
# clears it in admin ("Access attempts") or with `manage.py axes_reset_username USERNAME`.
# Behind a proxy the address is the proxy's, so the lockout is then by user name.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOUPE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOUPE_LOGIN_COOLOFF_MIN", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"

# Shared terminals on the floor: a session ends after LOUPE_SESSION_IDLE_S without a person
# using a page (accounts.middleware), and when the browser closes.
SESSION_COOKIE_AGE = env_int("LOUPE_SESSION_IDLE_S", 30 * 60, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Content Security Policy (django-csp 4): scripts only from Loupe's own static files, never
# inline. Inline styles stay allowed: templates place detection boxes with style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the review and labeling pages read it to send JSON requests

# Review queue: a claim lapses after this long without activity and the item returns to the
# queue; a decision can be undone by its inspector for this long.
LOUPE_REVIEW_CLAIM_S = env_int("LOUPE_REVIEW_CLAIM_S", 180, minimum=10)
LOUPE_UNDO_WINDOW_S = env_int("LOUPE_UNDO_WINDOW_S", 10, minimum=1)
# Raising a line above assist needs at least this many unbiased items of the line's active
# model: decided by a human who did not see it (shadow, audits, blind samples), beside the
# line's agreement and miss-rate bounds (inspection/evidence.py); a supervisor can override
# with a written reason. `manage.py set_level` is the operator's way
# around it and is logged like any change.
LOUPE_MIN_AGREEMENT_ITEMS = env_int("LOUPE_MIN_AGREEMENT_ITEMS", 200, minimum=0)

# Dataset imports: largest uploaded zip, most entries, most bytes unpacked, largest JSON
LOUPE_IMPORT_MAX_BYTES = env_int("LOUPE_IMPORT_MAX_BYTES", 500 * 1024 * 1024, minimum=1)
LOUPE_IMPORT_MAX_FILES = env_int("LOUPE_IMPORT_MAX_FILES", 50_000, minimum=1)
LOUPE_IMPORT_MAX_UNPACKED_BYTES = env_int("LOUPE_IMPORT_MAX_UNPACKED_BYTES", 2 * 1024**3, minimum=1)
LOUPE_IMPORT_MAX_JSON_BYTES = env_int("LOUPE_IMPORT_MAX_JSON_BYTES", 100 * 1024 * 1024, minimum=1)
# A finished export's zip is removed this many days after it was written (it can be made again)
LOUPE_EXPORT_KEEP_DAYS = env_int("LOUPE_EXPORT_KEEP_DAYS", 7, minimum=1)
# Exports and imports run on their own queue, so a long export never delays an inspection
LOUPE_DATASETS_QUEUE = env_str("LOUPE_DATASETS_QUEUE", "datasets")
# Batch predictions run on theirs, served by their own worker, which steps back to the idle
# scheduling class and LOUPE_BATCH_NICE (0: stays as it is) so a batch never delays a station
LOUPE_BATCH_QUEUE = env_str("LOUPE_BATCH_QUEUE", "batch")
LOUPE_BATCH_NICE = env_int("LOUPE_BATCH_NICE", 19, minimum=0)
# A mirror challenger predicts on its own queue, after the active model answered; past this
# many waiting messages its items are skipped (sampled down), so it never falls hours behind
LOUPE_CHALLENGER_QUEUE = env_str("LOUPE_CHALLENGER_QUEUE", "challenger")
LOUPE_CHALLENGER_MAX_BACKLOG = env_int("LOUPE_CHALLENGER_MAX_BACKLOG", 200, minimum=0)
# A worker that serves the challenger queue alone runs in the idle scheduling class at this
# nice value (0: as it is), so a mirror never takes a core from a station's prediction
LOUPE_CHALLENGER_NICE = env_int("LOUPE_CHALLENGER_NICE", 19, minimum=0)
# A rollout's next step needs this many human-checked items of the challenger at its current
# step, and each of its rates' 95% upper bound at most the active model's rate plus the margin
# (monitoring.rollout_gate). An upper bound of 2% over no misses takes 190 items of the kind.
LOUPE_ROLLOUT_MIN_CHECKED = env_int("LOUPE_ROLLOUT_MIN_CHECKED", 100, minimum=1)
LOUPE_ROLLOUT_MARGIN = env_float("LOUPE_ROLLOUT_MARGIN", 0.02, minimum=0.0, maximum=1.0)
LOUPE_MODEL_DIR = Path(env_str("LOUPE_MODEL_DIR", str(VAR_DIR / "models")))
WHITENOISE_USE_FINDERS = True

if not DEBUG:
    # embedded serves plain http on localhost; a production install sits behind TLS
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not EMBEDDED)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not EMBEDDED)
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Behind a TLS proxy (docs/OPERATIONS.md). A production install is https-only by default; the
# embedded mode and DEBUG serve plain http on localhost, so there every default is off.
TLS_BY_DEFAULT = not (EMBEDDED or DEBUG)
if env_bool("LOUPE_TRUST_X_FORWARDED_PROTO", False):
    # opt-in: only a proxy that always sets (or strips) the header may be trusted with it,
    # otherwise any client could claim https
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", TLS_BY_DEFAULT)
# a load balancer may probe the health endpoint, and Prometheus scrape /metrics, over plain
# http inside the plant network
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if TLS_BY_DEFAULT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", TLS_BY_DEFAULT)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# needed only when the browser's origin differs from the host Django sees (another port or name)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("https://", "http://")):
        raise ImproperlyConfiguredEnv(
            f"CSRF_TRUSTED_ORIGINS entries need their scheme (https://host), got {_origin!r}"
        )

# Uploads: the byte limit is checked before decoding, the pixel limit before pixels are
# allocated, so a decompression bomb is refused without being expanded.
LOUPE_MAX_IMAGE_BYTES = env_int("LOUPE_MAX_IMAGE_BYTES", 20 * 1024 * 1024, minimum=1)
LOUPE_MAX_IMAGE_PIXELS = env_int("LOUPE_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = LOUPE_MAX_IMAGE_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = LOUPE_MAX_IMAGE_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["inspection.api.auth.StationTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["inspection.api.auth.IsEnabledStation"],
    "EXCEPTION_HANDLER": "loupe.common.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loupe station API",
    "DESCRIPTION": "Camera stations post product images and receive accept / reject / review.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # a station, a script's API token or a signed-in user; nobody anonymous
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": ["loupe.schema_access.SchemaReaderAuthentication"],
    # requests and answers described apart: uploads as binary, required and minLength exact
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ExportFormatEnum": "datasets.models.ExportFormat",
        "ImportFormatEnum": "datasets.models.ImportFormat",
        # the review API's choices, named once for every operation that shows them
        "AutomationLevelEnum": "inspection.models.AutomationLevel",
        "OutcomeEnum": "inspection.models.Outcome",
        "ReviewStateEnum": "inspection.models.ReviewState",
        "ExportImportStateEnum": "datasets.models.ExportImportState",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Celery. "memory://" (the embedded default) runs tasks in the web process as they are sent.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
CELERY_RESULT_BACKEND = env_str(
    "CELERY_RESULT_BACKEND",
    "cache+memory://" if CELERY_BROKER_URL == "memory://" else CELERY_BROKER_URL,
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL == "memory://")
if (
    CELERY_BROKER_URL == "memory://"
    and not EMBEDDED
    and "CELERY_TASK_ALWAYS_EAGER" not in os.environ
):
    # with PostgreSQL but no broker, every prediction, export and training run would run
    # inside a web request: say so at start instead
    raise ImproperlyConfiguredEnv(
        "CELERY_BROKER_URL must be set when DATABASE_URL is (see .env.example); to run tasks "
        "in the web process on purpose, set CELERY_TASK_ALWAYS_EAGER=1"
    )
CELERY_TASK_EAGER_PROPAGATES = False
# A killed worker's task must run again: ack after the task, and requeue when the worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes the Django connection after every task by default: a new PostgreSQL
# connection per image costs milliseconds on the hot path.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "inference"
# Redis redelivers an unacked message (its worker died) once it is older than the visibility
# timeout, which must outlast the longest task; workers look for such messages every sweep.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300, minimum=1),
    "unacked_restore_interval": env_int("CELERY_REDELIVERY_SWEEP_S", 30, minimum=1),
    "unacked_restore_throttle": 1,
}
LOUPE_TORCH_THREADS = env_int("LOUPE_TORCH_THREADS", 1, minimum=1)
# Training takes every core by default; a host shared with other work caps it here
LOUPE_TRAIN_THREADS = env_int("LOUPE_TRAIN_THREADS", os.cpu_count() or 1, minimum=1)

# Time limits (soft, hard) in seconds per kind of task: at the soft limit the task records its
# failure (an export or a pipeline step marked failed, an item given the fail-safe); at the hard
# limit the worker process is killed. The embedded mode runs tasks in process, without limits.
# Inference's hard limit stays under CELERY_VISIBILITY_TIMEOUT (its tasks are acked late).
# The hard limit defaults to the soft one plus a margin for recording the failure.
LOUPE_TASK_TIME_LIMITS = {}
for _kind, _soft, _margin in (
    ("inference", 30, 30),
    ("datasets", 3600, 300),
    ("training", 14400, 600),
):
    _soft = env_int(f"LOUPE_{_kind.upper()}_SOFT_TIME_LIMIT_S", _soft, minimum=1)
    _hard = env_int(f"LOUPE_{_kind.upper()}_HARD_TIME_LIMIT_S", _soft + _margin, minimum=2)
    if _hard <= _soft:
        raise ImproperlyConfiguredEnv(
            f"LOUPE_{_kind.upper()}_HARD_TIME_LIMIT_S ({_hard}) must be above "
            f"LOUPE_{_kind.upper()}_SOFT_TIME_LIMIT_S ({_soft}): the soft limit records the failure"
        )
    LOUPE_TASK_TIME_LIMITS[_kind] = (_soft, _hard)

# /health/ (loupe.health): the free space MEDIA_ROOT and LOUPE_MODEL_DIR need, and the queues
# that must have a worker (empty: inference, the datasets queue and training)
LOUPE_HEALTH_MIN_FREE_MB = env_int("LOUPE_HEALTH_MIN_FREE_MB", 1024, minimum=0)
LOUPE_HEALTH_QUEUES = env_list("LOUPE_HEALTH_QUEUES", [])

# /metrics (loupe.metrics_view), for Prometheus: a scraper sends LOUPE_METRICS_TOKEN as a
# Bearer token, or comes from an address in LOUPE_METRICS_ALLOW (CIDR list); empty token:
# the address alone decides. Figures read from the database cover the last
# LOUPE_METRICS_WINDOW_S seconds.
LOUPE_METRICS_TOKEN = env_str("LOUPE_METRICS_TOKEN", "")
LOUPE_METRICS_ALLOW = []
for _network in env_list("LOUPE_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"]):
    try:
        LOUPE_METRICS_ALLOW.append(ipaddress.ip_network(_network, strict=False))
    except ValueError:
        raise ImproperlyConfiguredEnv(
            f"LOUPE_METRICS_ALLOW entries must be addresses or CIDR networks, got {_network!r}"
        ) from None
LOUPE_METRICS_WINDOW_S = env_int("LOUPE_METRICS_WINDOW_S", 3600, minimum=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
LOUPE_INFERENCE_DEVICE = env_str("LOUPE_INFERENCE_DEVICE", "cpu")

# Faults (tests/faults): a dependency that goes away and comes back must cost seconds, never a
# hang, a lost item or a process someone has to restart.
# - A down database, broker or full disk answers 503 + Retry-After (JSON for the API).
MIDDLEWARE += ["loupe.common.unavailable.ServiceUnavailableMiddleware"]
# - A connection PostgreSQL dropped (a restart) is noticed before a request or task uses it
#   (loupe.celery closes unusable connections around each task, as Django does per request).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# - Every Redis socket has a timeout, so nothing waits on a Redis that does not answer.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS.update(
    socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
)
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = 10
# - A worker reconnects to a restarted broker every second, forever, and survives kombu's
#   error on closing the lost connection (loupe/worker_consumer.py says which).
CELERY_WORKER_CONSUMER = "loupe.worker_consumer:ReconnectingConsumer"
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the connection drops finishes; its message is redelivered after the
# visibility timeout and finds the item routed (predictions are idempotent). Cancelling it
# would cost a pool process and its loaded model.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# - A pool process loads the models before it takes items (loupe.celery); the pool waits
#   this long for it before it gives up on the process.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120
# - Sending a task gives up within about a second when the broker is down: the item gets the
#   fail-safe at once instead of holding a web thread.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
