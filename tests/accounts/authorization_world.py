"""The objects the authorization table's requests meet, and how each URL is asked: which
object fills its parameter, what its body carries, what is done before it.

Two lines, "own" (the one the inspector, supervisor and data team work, the station's) and
"other", each with an object of every kind a URL names, made through the services.
"""

import io
import json
import re
import zipfile
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.accounts import authorization_table as table
from tests.helpers import image_bytes, seed_inspection, seed_model_version

PASSWORD = "authorization-table-password-1"
# Django admin's page of one app: its route is a regular expression naming every app
APP_LIST = re.compile(r"\^\(\?P<app_label>[\w|]+\)/\$")


# --- the objects every request meets -------------------------------------------------------


@dataclass
class LineObjects:
    """One line and an object of every kind a URL can name."""

    line: object
    station: object
    token: str
    inspection: object  # open in the review queue, unlabeled
    review_item: object
    decided: object  # an inspection a human decided (its Decision)
    version: object
    export: object
    dataset_import: object
    active_model: object
    candidate: object
    run: object
    objects: dict = field(default_factory=dict)  # by admin model, for admin's object pages
    batch: object = None  # a finished batch prediction
    queue_measurement: object = None  # of no line: both lines get one, both are seen
    alert: object = None  # an open alert of the line (its review backlog)


def _labeled_line(name: str, author) -> LineObjects:
    from datasets import services as dataset_services
    from datasets.models import BatchPrediction, DatasetExport, DatasetImport
    from inspection import services as inspection_services
    from inspection.rollouts import start_rollout
    from labeling import services as labeling_services
    from ml import services as ml_services
    from ml.engine.types import ModelOutput
    from ml.models import ModelVersion, PipelineRun, PipelineStep
    from review.services import decide_review_item

    line = inspection_services.create_line(name=name, level="human_only")
    station, token = inspection_services.create_station(line=line, name=f"{name}-cam")
    inspection = seed_inspection(station, f"{name}-open")
    decided = seed_inspection(station, f"{name}-decided")
    decide_review_item(item=decided.review_item, inspector=author, outcome="reject")
    revision, _ = labeling_services.save_annotation(
        inspection=decided, author=author, image_label="ok", boxes=[]
    )
    version, _ = dataset_services.freeze_dataset(
        filters={"lines": [name]}, user=None, name=f"{name}-v1"
    )
    export = DatasetExport.objects.create(
        version=version, format="coco", state="done", file_name=f"exports/{name}.zip"
    )
    path = dataset_services.export_path(export)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_zip({"annotations.json": b"{}"}))
    dataset_import = DatasetImport.objects.create(
        line=line, format="coco", state="done", archive_name="old.zip"
    )
    active, candidate = seed_model_version(f"{name}-m1"), seed_model_version(f"{name}-m2")
    ModelVersion.objects.filter(pk__in=[active.pk, candidate.pk]).update(line=line)
    ml_services.set_active_version(line=line, model_version=active, changed_by="table")
    policy = ml_services.set_retraining_policy(line=line, changed_by="table", mlops_level="manual")
    prediction = inspection_services.record_prediction(
        inspection=inspection,
        model_version=active,
        output=ModelOutput(0.1, ()),
        latency_ms=5.0,
        is_late=False,
    )
    rollout = start_rollout(line=line, challenger=candidate, mode="mirror", changed_by="table")
    run = PipelineRun.objects.create(
        line=line, trigger="manual", state="failed", config={}, error="the table's run"
    )
    PipelineStep.objects.create(run=run, name="train", position=0, state="failed")
    line.refresh_from_db()
    objects = {
        "inspection/line": line,
        "inspection/station": station,
        "inspection/linechange": line.changes.first(),
        "inspection/inspection": inspection,
        "inspection/decision": decided.decision,
        "inspection/prediction": prediction,
        "inspection/reviewitem": inspection.review_item,
        "inspection/rollout": rollout,
        "labeling/annotationrevision": revision,
        "datasets/datasetversion": version,
        "datasets/datasetexport": export,
        "datasets/datasetimport": dataset_import,
        "ml/modelversion": candidate,
        "ml/pipelinerun": run,
        "ml/retrainingpolicy": policy,
    }
    batch = BatchPrediction.objects.create(
        line=line, model_version=active, state="done", source_name="old-shots.zip"
    )
    from ml.models import QueueMeasurement

    queue_measurement = QueueMeasurement.objects.create(params={}, result={})
    alert = _open_alert(line)
    return LineObjects(
        alert=alert,
        queue_measurement=queue_measurement,
        batch=batch,
        line=line,
        station=station,
        token=token,
        inspection=inspection,
        review_item=inspection.review_item,
        decided=decided,
        version=version,
        export=export,
        dataset_import=dataset_import,
        active_model=active,
        candidate=candidate,
        run=run,
        objects=objects,
    )


def _open_alert(line):
    """The line's review backlog alert, opened by the evaluation (its one open item)."""
    from monitoring import alert_rules, alerts
    from monitoring.models import AlertRule

    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line, metric="review_backlog").update(threshold=1)
    from django.utils import timezone

    return next(a for a in alerts.evaluate_line(line, timezone.now()) if a.line_id == line.pk)


def _zip(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class World:
    own: LineObjects
    other: LineObjects
    users: dict  # actor -> user
    group: object
    api_tokens: dict  # actor -> their API token; "other": a token of a user of the other line
    axes: dict  # admin model -> a row of django-axes


def build_world() -> World:
    from django.contrib.auth.models import Group

    from accounts.services import create_user
    from accounts.tokens import issue_api_token

    admin_user = create_user(username="admin", role="admin", line_names=[], password=PASSWORD)
    own = _labeled_line("line-own", admin_user)
    other = _labeled_line("line-other", admin_user)
    users = {"admin": admin_user}
    for role in ("inspector", "supervisor", "data_team"):
        users[role] = create_user(
            username=role, role=role, line_names=[own.line.name], password=PASSWORD
        )
    stranger = create_user(
        username="stranger", role="inspector", line_names=[other.line.name], password=PASSWORD
    )
    api_tokens = {
        actor: issue_api_token(user=user, name=f"{actor}'s script")[0]
        for actor, user in [*users.items(), ("other", stranger)]
    }
    return World(
        own=own,
        other=other,
        users=users,
        group=Group.objects.get(name="inspector"),
        api_tokens=api_tokens,
        axes=_axes_rows(),
    )


def _axes_rows() -> dict:
    """One row of each django-axes record, for admin's pages of them."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    who = {"username": "someone", "ip_address": "10.0.0.9", "user_agent": "table"}
    return {
        "axes/accessattempt": AccessAttempt.objects.create(
            **who, get_data="", post_data="", failures_since_start=1
        ),
        "axes/accesslog": AccessLog.objects.create(**who),
        "axes/accessfailurelog": AccessFailureLog.objects.create(**who),
    }


# --- how each URL is asked -----------------------------------------------------------------

# which object of a line fills a route's parameter (the longest matching prefix wins)
OBJECT_OF_ROUTE = {
    "review/items/<int:pk>/": "review_item",
    "api/v1/review/items/<int:pk>/": "review_item",
    "lines/<int:pk>/": "line",
    "inspections/<int:pk>/": "inspection",
    "api/v1/inspections/<int:pk>/": "inspection",
    "datasets/<int:pk>/": "version",
    "api/v1/datasets/<int:pk>/": "version",
    "datasets/exports/<int:pk>/": "export",
    "api/v1/datasets/exports/<int:pk>/": "export",
    "datasets/imports/<int:pk>/": "dataset_import",
    "datasets/batches/<int:pk>/": "batch",
    "api/v1/datasets/imports/<int:pk>/": "dataset_import",
    "models/<int:pk>/": "candidate",
    "models/lines/<int:line_pk>/": "line",
    "models/runs/<int:pk>/": "run",
    "models/queue-measurements/<int:pk>/": "queue_measurement",
    "alerts/<int:pk>/": "alert",
}


def _json(data) -> dict:
    return {"data": json.dumps(data), "content_type": "application/json"}


def _archive() -> SimpleUploadedFile:
    return SimpleUploadedFile("labels.zip", _zip({"annotations.json": b"{}"}), "application/zip")


def _line_change(o: LineObjects) -> dict:
    from inspection import console

    return {
        "data": {
            "automation_level": o.line.automation_level,
            "accept_threshold": 0.25,
            "reject_threshold": o.line.reject_threshold,
            "reason": "authorization table",
            "line_version": console.line_version(o.line),
            "confirm": "1",
        }
    }


# what a request carries besides its URL: JSON as the pages' scripts send it, forms and files
# as a browser posts them; the ones that name a line in their body are asked for both lines
BODIES = {
    ("POST", "account/api-tokens/"): lambda o: {"data": {"name": "nightly export", "days": 30}},
    ("POST", "review/claim"): lambda o: _json({}),
    ("POST", "review/items/<int:pk>/decide"): lambda o: _json({"decision": "accept"}),
    ("POST", "lines/<int:pk>/change/"): _line_change,
    ("POST", "lines/<int:pk>/rules/"): lambda o: {
        "data": {"audit_pct": 2, "agreement_target_pct": 95, "escape_limit_pct": 25}
    },
    ("POST", "lines/<int:pk>/escapes/"): lambda o: {
        "data": {"serial": o.review_item.inspection.external_id, "note": "customer return"}
    },
    ("POST", "inspections/<int:pk>/annotations/"): lambda o: _json(
        {"image_label": "ok", "boxes": [], "note": "table"}
    ),
    ("POST", "datasets/freeze/"): lambda o: {"data": {"lines": [o.line.name]}},
    ("POST", "datasets/<int:pk>/exports/"): lambda o: _json({"format": "coco"}),
    ("POST", "datasets/import/"): lambda o: {
        "data": {"line": o.line.pk, "format": "coco", "archive": _archive()}
    },
    ("POST", "datasets/batches/"): lambda o: {
        "data": {
            "line": o.line.pk,
            "archive": SimpleUploadedFile("shots.zip", _zip({"a.png": image_bytes()})),
        }
    },
    ("POST", "datasets/batches/<int:pk>/labeling/"): lambda o: _json({"which": "all"}),
    ("GET", "models/"): lambda o: {"data": {"line": o.line.pk}},
    ("POST", "models/<int:pk>/promote/"): lambda o: {
        "data": {"expected_active": o.active_model.pk}
    },
    ("POST", "models/lines/<int:line_pk>/rollback/"): lambda o: {
        "data": {"expected_active": o.active_model.pk}
    },
    ("POST", "models/lines/<int:line_pk>/policy/"): lambda o: {
        "data": {
            "mlops_level": "assisted",
            "retrain_every_corrections": 100,
            "gate_margin": 0.01,
            "max_class_recall_drop": 0.05,
        }
    },
    ("POST", "api/v1/inspections/"): lambda o: {
        "data": {
            "external_id": "table-new",
            "image": SimpleUploadedFile("p.png", image_bytes(seed=3), "image/png"),
        }
    },
    ("POST", "api/v1/datasets/"): lambda o: _json({"filters": {"lines": [o.line.name]}}),
    ("POST", "api/v1/datasets/<int:pk>/exports/"): lambda o: _json({"format": "coco"}),
    ("POST", "api/v1/datasets/imports/"): lambda o: {
        "data": {"line": o.line.name, "format": "coco", "archive": _archive()}
    },
}
LINE_IN_BODY = {
    ("GET", "models/"),
    ("POST", "datasets/freeze/"),
    ("POST", "datasets/import/"),
    ("POST", "datasets/batches/"),
    ("POST", "api/v1/datasets/"),
    ("POST", "api/v1/datasets/imports/"),
}


def _undo_needs_a_decision(o: LineObjects, user) -> None:
    from review.services import decide_review_item

    decide_review_item(item=o.review_item, inspector=user, outcome="accept")


# done inside the request's savepoint, as the actor, before the request
PREPARE = {
    ("POST", "review/items/<int:pk>/undo"): _undo_needs_a_decision,
    ("POST", "api/v1/review/items/<int:pk>/undo"): _undo_needs_a_decision,
}
for _action in ("undo", "keep", "release"):
    BODIES["POST", f"review/items/<int:pk>/{_action}"] = lambda o: _json({})
    BODIES["POST", f"api/v1/review/items/<int:pk>/{_action}"] = lambda o: _json({})
# the labeling queue's calls, as its script sends them
BODIES["POST", "labeling/claim"] = lambda o: _json({})
for _action in ("keep", "release", "skip"):
    BODIES["POST", f"inspections/<int:pk>/queue/{_action}"] = lambda o: _json({})
BODIES["POST", "api/v1/review/next"] = lambda o: _json({})
# /metrics asked from an address not in LOUPE_METRICS_ALLOW: users on the plant network
BODIES["GET", "metrics"] = lambda o: {"REMOTE_ADDR": "192.0.2.10"}
# the alert pages' forms, as a supervisor fills them
BODIES["POST", "lines/<int:pk>/alerts/rules/"] = lambda o: {
    "data": {
        "review_backlog-threshold": "100",
        "review_backlog-window": "0",
        "review_backlog-min_items": "0",
        "review_backlog-enabled": "on",
    }
}
BODIES["POST", "lines/<int:pk>/alerts/mutes/"] = lambda o: {
    "data": {"end": "2099-01-01T10:00", "start": "2098-12-31T22:00", "reason": "changeover"}
}
BODIES["POST", "lines/<int:pk>/alerts/reset/"] = lambda o: {"data": {"reason": "variant B"}}
BODIES["POST", "lines/<int:pk>/alerts/settings/"] = lambda o: {
    "data": {
        "webhook_url": "https://hooks.example.com/loupe",
        "step_back_enabled": "on",
        "step_back_floor": "assist",
        "drift_audit_fraction": "0.2",
    }
}
BODIES["POST", "lines/<int:pk>/rollout/act/"] = lambda o: {"data": {"action": "advance"}}
BODIES["POST", "api/v1/review/items/<int:pk>/decide"] = lambda o: _json({"decision": "accept"})

ADMIN_LINE_OBJECTS = re.compile(r"admin/(\w+/\w+)/<path:object_id>/")


def _admin_url(route: str, o: LineObjects, world: World) -> str:
    rest = route.removeprefix(table.ADMIN_PREFIX)
    if APP_LIST.fullmatch(rest):
        return "/admin/inspection/"
    if rest == "(?P<url>.*)$":
        return "/admin/no-such-page/"
    if rest.startswith("r/"):
        content_type = ContentType.objects.get_for_model(o.inspection)
        return f"/admin/r/{content_type.pk}/{o.inspection.pk}/"
    if match := ADMIN_LINE_OBJECTS.match(route):
        model = match.group(1)
        unscoped = {
            "auth/group": world.group,
            "auth/user": world.users["inspector"],
            "accounts/apitoken": world.api_tokens["inspector"],
            **world.axes,
        }
        obj = unscoped.get(model) or o.objects[model]
        return "/" + route.replace("<path:object_id>", str(obj.pk))
    return "/" + route.replace("<id>", str(world.users["inspector"].pk))


def is_sided(route: str, method: str) -> bool:
    """Whether the request names an object of a line (in its URL or its body). Django admin
    is for admins alone, who see every line: its pages are asked with the own line's objects."""
    if (method, route) in LINE_IN_BODY:
        return True
    return "<" in route and not route.startswith(table.ADMIN_PREFIX)


def request_for(
    route: str, method: str, o: LineObjects, world: World, actor: str, side: str
) -> tuple[str, dict]:
    if route == "account/api-tokens/<int:pk>/revoke/":
        # a user's own token, or someone else's (a user of the other line)
        tokens = world.api_tokens
        token = tokens["other"] if side == "other" else tokens.get(actor, tokens["inspector"])
        return f"/account/api-tokens/{token.pk}/revoke/", {}
    if route.startswith(table.ADMIN_PREFIX):
        url = _admin_url(route, o, world)
    else:
        url = "/" + route
        prefixes = [p for p in OBJECT_OF_ROUTE if route.startswith(p)]
        if prefixes:
            prefix = max(prefixes, key=len)
            obj = getattr(o, OBJECT_OF_ROUTE[prefix])
            url = "/" + route.replace(re.search(r"<[^>]+>", prefix).group(0), str(obj.pk))
    body = BODIES.get((method, route))
    return url, body(o) if body else {}
