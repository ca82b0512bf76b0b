"""The declared authorization table: for every URL of Loupe, what each actor gets, on an object
of a line they work ("own") and on one of a line they do not ("other").

The expectations come from PRODUCT.md's users and loupe.common.permissions, not from what the
code happens to answer:
- every page needs a browser login; the station authenticates with its token on the station
  API only, so on a page it is anonymous;
- inspectors review and label; supervisors also control lines and models; the data team labels,
  works with datasets and starts retraining, but neither reviews nor controls a line; admins do
  everything, on every line, and alone reach Django admin;
- an object of another line is "not found" (404), never shown or changed;
- a role without the permission is refused (403) before anything is looked up.
tests/accounts/test_authorization_table.py walks the URL resolver and fails on a URL missing
from here, or on a row here whose URL no longer exists.
"""

from typing import NamedTuple

ACTORS = ("anonymous", "station", "inspector", "supervisor", "data_team", "admin")


class Redirect(NamedTuple):
    """A 302 whose Location starts with `to` (or one of them); to=None: any page but a login
    page (an action that redirects back to where it was started)."""

    to: str | tuple | None = None


class AnyOf(NamedTuple):
    """Any of these statuses: what the answer depends on is not who asks."""

    statuses: tuple


class Sides(NamedTuple):
    """Different answers on an object of the actor's own line and of another line."""

    own: object
    other: object


LOGIN = Redirect("/login/")
ADMIN_LOGIN = Redirect("/admin/login/")
SIGN_IN = Redirect(("/login/", "/admin/login/"))  # either login page
BACK = Redirect()
OWN = Sides(200, 404)  # seen on the own line, not found on another

#   actors:       anonymous  station  inspector     supervisor    data_team     admin
PAGE_FOR_ROLES = (LOGIN, LOGIN, 200, 200, 200, 200)
OWN_FOR_ROLES = (LOGIN, LOGIN, OWN, OWN, OWN, 200)
REVIEWERS = (LOGIN, LOGIN, 200, 200, 403, 200)
REVIEWERS_OWN = (LOGIN, LOGIN, OWN, OWN, 403, 200)
LINE_CONTROL = (LOGIN, LOGIN, 403, Sides(BACK, 404), 403, BACK)
# line control whose form comes back with its errors (an escape report on an item the model did
# not accept): the page again, on the own line only
LINE_CONTROL_FORM = (LOGIN, LOGIN, 403, OWN, 403, 200)
# PRODUCT.md: the data team starts retraining too; promotion and rollback stay line control
RETRAINING = (LOGIN, LOGIN, 403, Sides(BACK, 404), Sides(BACK, 404), BACK)
# the world's mirror challenger has no human-checked item, so the gate refuses its next step
# (409): past the permission, and the same for whoever asks
ROLLOUT_ACTION = (LOGIN, LOGIN, 403, Sides(409, 404), 403, 409)
DATASETS = (LOGIN, LOGIN, 403, 200, 200, 200)
DATASETS_OWN = (LOGIN, LOGIN, 403, OWN, OWN, 200)
API_DATASETS = (401, 401, 403, 200, 200, 200)
API_DATASETS_OWN = (401, 401, 403, OWN, OWN, 200)
# the review API: a user's token (never a station's), reviewers only, items of their lines
API_REVIEWERS = (401, 401, 200, 200, 403, 200)
API_REVIEWERS_OWN = (401, 401, OWN, OWN, 403, 200)

# route (as Django's resolver spells it) -> {method: (one expectation per actor of ACTORS)}
TABLE = {
    # each role starts where its daily work is
    "": {"GET": (LOGIN, LOGIN, *map(Redirect, ("/review/", "/lines/", "/data/", "/lines/")))},
    "login/": {"GET": (200, 200, 200, 200, 200, 200)},
    "logout/": {"POST": (LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)},
    # for a load balancer, without a login: 200, or 503 naming what is down, whoever asks
    "health/": {"GET": (AnyOf((200, 503)),) * 6},
    # for Prometheus: by its scrape token or its address, never by a login; asked here from an
    # address outside LOUPE_METRICS_ALLOW (authorization_world), and a station's token is not
    # the scrape token (tests/metrics has the scrapes that are let in)
    "metrics": {"GET": (403, 401, 403, 403, 403, 403)},
    # each user's own API tokens (another user's token is not found, an admin's included:
    # admins revoke other people's tokens in Django admin)
    "account/api-tokens/": {"GET": PAGE_FOR_ROLES, "POST": PAGE_FOR_ROLES},
    "account/api-tokens/<int:pk>/revoke/": {
        "POST": (LOGIN, LOGIN, *(Sides(Redirect("/account/api-tokens/"), 404),) * 4)
    },
    # review queue: inspectors, supervisors and admins; the data team does not decide items
    "review/": {"GET": REVIEWERS},
    "review/claim": {"POST": REVIEWERS},
    "review/items/<int:pk>/decide": {"POST": REVIEWERS_OWN},
    "review/items/<int:pk>/undo": {"POST": REVIEWERS_OWN},
    "review/items/<int:pk>/keep": {"POST": REVIEWERS_OWN},
    "review/items/<int:pk>/release": {"POST": REVIEWERS_OWN},
    # the console: every role watches its lines; only supervisors and admins change them
    "lines/": {"GET": PAGE_FOR_ROLES},
    "lines/<int:pk>/": {"GET": OWN_FOR_ROLES},
    "lines/<int:pk>/change/": {"GET": LINE_CONTROL, "POST": LINE_CONTROL},
    "lines/<int:pk>/rules/": {"POST": LINE_CONTROL},
    "lines/<int:pk>/escapes/": {"POST": LINE_CONTROL_FORM},
    # the monitoring page: whoever sees the line watches its history
    "lines/<int:pk>/monitoring/": {"GET": OWN_FOR_ROLES},
    # alerts: whoever sees the line sees its alerts and rules; acting on them is line control
    "alerts/": {"GET": PAGE_FOR_ROLES},
    "alerts/<int:pk>/acknowledge/": {"POST": LINE_CONTROL},
    "alerts/<int:pk>/resolve/": {"POST": LINE_CONTROL},
    "lines/<int:pk>/alerts/": {"GET": OWN_FOR_ROLES},
    "lines/<int:pk>/alerts/rules/": {"POST": LINE_CONTROL},
    "lines/<int:pk>/alerts/mutes/": {"POST": LINE_CONTROL},
    "lines/<int:pk>/alerts/reset/": {"POST": LINE_CONTROL},
    "lines/<int:pk>/alerts/settings/": {"POST": LINE_CONTROL},
    # rollouts: whoever sees the line sees its challenger; acting on it is line control
    "lines/<int:pk>/rollout/": {"GET": OWN_FOR_ROLES},
    "lines/<int:pk>/rollout/act/": {"POST": ROLLOUT_ACTION},
    "inspections/<int:pk>/": {"GET": OWN_FOR_ROLES},
    "inspections/<int:pk>/image": {"GET": OWN_FOR_ROLES},
    "inspections/<int:pk>/thumb": {"GET": OWN_FOR_ROLES},
    # labeling: every role labels (the data team fixes labels too)
    "inspections/<int:pk>/label/": {"GET": OWN_FOR_ROLES},
    "inspections/<int:pk>/annotations/": {
        "GET": OWN_FOR_ROLES,
        "POST": (LOGIN, LOGIN, Sides(201, 404), Sides(201, 404), Sides(201, 404), 201),
    },
    "inspections/<int:pk>/history/": {"GET": OWN_FOR_ROLES},
    "data/": {"GET": PAGE_FOR_ROLES},
    # the labeling queue: every role labels; an entry is named by its inspection. Refreshing
    # runs the line's model over its recent items: whoever may start retraining may start it
    "labeling/": {"GET": PAGE_FOR_ROLES},
    "labeling/claim": {"POST": PAGE_FOR_ROLES},
    "inspections/<int:pk>/queue/keep": {"POST": OWN_FOR_ROLES},
    "inspections/<int:pk>/queue/release": {"POST": OWN_FOR_ROLES},
    "inspections/<int:pk>/queue/skip": {"POST": OWN_FOR_ROLES},
    "lines/<int:pk>/labeling/refresh/": {"POST": RETRAINING},
    # datasets: the data team, supervisors and admins; never inspectors. Freezing or importing
    # from another line is refused as a bad choice in the form (400), like an unknown line.
    "datasets/": {"GET": DATASETS},
    "datasets/freeze/": {"POST": (LOGIN, LOGIN, 403, Sides(BACK, 400), Sides(BACK, 400), BACK)},
    "datasets/<int:pk>/": {"GET": DATASETS_OWN},
    "datasets/<int:pk>/manifest.csv": {"GET": DATASETS_OWN},
    "datasets/<int:pk>/exports/": {
        "POST": (LOGIN, LOGIN, 403, Sides(202, 404), Sides(202, 404), 202)
    },
    "datasets/exports/<int:pk>/": {"GET": DATASETS_OWN},
    "datasets/exports/<int:pk>/download/": {"GET": DATASETS_OWN},
    "datasets/import/": {
        "GET": DATASETS,
        "POST": (LOGIN, LOGIN, 403, Sides(BACK, 400), Sides(BACK, 400), BACK),
    },
    "datasets/imports/<int:pk>/": {"GET": DATASETS_OWN},
    "datasets/imports/<int:pk>/status/": {"GET": DATASETS_OWN},
    # batch predictions: whoever imports datasets; a batch of another line is not found
    "datasets/batches/": {
        "GET": DATASETS,
        "POST": (LOGIN, LOGIN, 403, Sides(BACK, 400), Sides(BACK, 400), BACK),
    },
    "datasets/batches/<int:pk>/": {"GET": DATASETS_OWN},
    "datasets/batches/<int:pk>/status/": {"GET": DATASETS_OWN},
    "datasets/batches/<int:pk>/results.csv": {"GET": DATASETS_OWN},
    "datasets/batches/<int:pk>/results.json": {"GET": DATASETS_OWN},
    "datasets/batches/<int:pk>/labeling/": {"POST": DATASETS_OWN},
    # the model registry: every role reads its lines' models; supervisors and admins act
    "models/": {"GET": OWN_FOR_ROLES},  # ?line=<pk>
    "models/<int:pk>/": {"GET": OWN_FOR_ROLES},
    "models/<int:pk>/promote/": {"POST": LINE_CONTROL},
    "models/<int:pk>/discard/": {"POST": LINE_CONTROL},
    "models/lines/<int:line_pk>/runs/": {"POST": RETRAINING},
    "models/lines/<int:line_pk>/rollback/": {"POST": LINE_CONTROL},
    "models/lines/<int:line_pk>/policy/": {"POST": LINE_CONTROL},
    "models/runs/<int:pk>/": {"GET": OWN_FOR_ROLES},
    "models/runs/<int:pk>/status.json": {"GET": OWN_FOR_ROLES},
    "models/runs/<int:pk>/retry/": {"POST": RETRAINING},
    # a measurement on synthetic lines: no line's data, so every role sees every one
    "models/queue-measurements/<int:pk>/": {"GET": PAGE_FOR_ROLES},
    # the station API: a station token and nothing else; a station sees its own inspections
    "api/v1/inspections/": {"POST": (401, 201, 401, 401, 401, 401)},
    "api/v1/inspections/<int:pk>/": {"GET": (401, OWN, 401, 401, 401, 401)},
    # the datasets API: users (never a station), by role, on their lines
    "api/v1/datasets/": {
        "GET": API_DATASETS,
        "POST": (401, 401, 403, Sides(200, 400), Sides(200, 400), 200),  # 200: already frozen
    },
    "api/v1/datasets/<int:pk>/": {"GET": API_DATASETS_OWN},
    "api/v1/datasets/<int:pk>/manifest.csv": {"GET": API_DATASETS_OWN},
    "api/v1/datasets/<int:pk>/exports/": {
        "GET": API_DATASETS_OWN,
        "POST": (401, 401, 403, Sides(202, 404), Sides(202, 404), 202),
    },
    "api/v1/datasets/exports/<int:pk>/": {"GET": API_DATASETS_OWN},
    "api/v1/datasets/exports/<int:pk>/download/": {"GET": API_DATASETS_OWN},
    "api/v1/datasets/imports/": {
        "GET": API_DATASETS,
        "POST": (401, 401, 403, Sides(202, 404), Sides(202, 404), 202),
    },
    "api/v1/datasets/imports/<int:pk>/": {"GET": API_DATASETS_OWN},
    # the review API for line-side terminals: the review queue's rules, by API token
    "api/v1/review/next": {"POST": API_REVIEWERS},
    "api/v1/review/items/<int:pk>/image": {"GET": API_REVIEWERS_OWN},
    "api/v1/review/items/<int:pk>/decide": {"POST": API_REVIEWERS_OWN},
    "api/v1/review/items/<int:pk>/undo": {"POST": API_REVIEWERS_OWN},
    "api/v1/review/items/<int:pk>/keep": {"POST": API_REVIEWERS_OWN},
    "api/v1/review/items/<int:pk>/release": {"POST": API_REVIEWERS_OWN},
    # the API's schema for anyone who may use an API (a station too); its page for people
    "api/schema/": {"GET": (401, 200, 200, 200, 200, 200)},
    "api/docs/": {"GET": PAGE_FOR_ROLES},
}

# Django admin: one rule for everything under admin/. Only admins (staff) get in; anyone
# without a session (a station too) is sent to a login page, signed-in users who are not staff
# to admin's login page. What an admin gets on each model's add and delete pages is declared
# per model below: history is read-only.
ADMIN_PREFIX = "admin/"
NOT_STAFF = (SIGN_IN, SIGN_IN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN)


def admin_only(for_admin) -> tuple:
    return (*NOT_STAFF, for_admin)


# admin/<app>/<model>/ -> (add page, delete page of an existing row) for an admin
ADMIN_MODELS = {
    "auth/group": (200, 200),
    "auth/user": (200, 200),
    "accounts/apitoken": (403, 403),  # made by its user, shown once; revoked, never deleted
    # django-axes: login attempts and lockouts, recorded by axes; deleting clears a lockout
    "axes/accessattempt": (403, 200),
    "axes/accesslog": (403, 200),
    "axes/accessfailurelog": (403, 200),
    "inspection/line": (200, 403),  # a line with history is never deleted
    "inspection/station": (403, 403),  # made by create_station (its token shown once)
    "inspection/linechange": (403, 403),
    "inspection/inspection": (403, 403),
    "inspection/decision": (403, 403),
    "inspection/prediction": (403, 403),
    "inspection/reviewitem": (403, 403),
    "inspection/rollout": (403, 403),  # changed by manage.py rollout, never by hand
    "labeling/annotationrevision": (403, 403),
    "datasets/datasetversion": (403, 403),
    "datasets/datasetexport": (403, 200),  # a record of a run: shown, deletable, not edited
    "datasets/datasetimport": (403, 200),
    "ml/modelversion": (403, 403),
    "ml/pipelinerun": (403, 403),
    "ml/retrainingpolicy": (200, 403),
}

# the site-wide admin pages, by the route after admin/
ADMIN_APP_LIST = "^(?P<app_label>...)/$"  # one app's models: a regular expression of the apps
ADMIN_SITE = {
    "": {"GET": admin_only(200)},
    "login/": {"GET": (200, 200, 200, 200, 200, BACK)},  # a signed-in admin goes to the index
    # not staff: back to admin's index (which asks them to log in), still logged in
    "logout/": {"POST": (SIGN_IN, SIGN_IN, *(Redirect("/admin/"),) * 3, LOGIN)},
    "password_change/": {"GET": admin_only(200)},
    "password_change/done/": {"GET": admin_only(200)},
    # no model declares autocomplete fields, so any autocomplete query is refused
    "autocomplete/": {"GET": admin_only(403)},
    "jsi18n/": {"GET": admin_only(200)},
    # "view on site" of an inspection: no inspection has a public page
    "r/<path:content_type_id>/<path:object_id>/": {"GET": admin_only(404)},
    "auth/user/<id>/password/": {"GET": admin_only(200)},
    ADMIN_APP_LIST: {"GET": admin_only(200)},
    "(?P<url>.*)$": {"GET": admin_only(404)},  # /admin/<anything else>
}


def admin_model_rows(model: str) -> dict:
    """The rows of one admin model's pages (admin/<app>/<model>/...)."""
    add, delete = ADMIN_MODELS[model]
    return {
        f"{model}/": {"GET": admin_only(200)},
        f"{model}/add/": {"GET": admin_only(add)},
        f"{model}/<path:object_id>/history/": {"GET": admin_only(200)},
        f"{model}/<path:object_id>/delete/": {"GET": admin_only(delete)},
        f"{model}/<path:object_id>/change/": {"GET": admin_only(200)},
        f"{model}/<path:object_id>/": {"GET": admin_only(Redirect(f"/admin/{model}/"))},
    }
