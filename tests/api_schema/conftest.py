"""Fixtures of the API schema tests: a station and a data-team user with their credentials;
the user's line has labeled items frozen into a version with an export and an import, so
the small ids that fuzzing tries first meet real rows (sequences start again at 1)."""

from types import SimpleNamespace

import pytest

PASSWORD = "schema-test-password-1"


@pytest.fixture(autouse=True)
def own_media(settings, tmp_path):
    """Imports and exports made here keep their files apart: tests elsewhere check that the
    shared media folder holds none left behind."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def station_auth(make_line, station_with_token):
    """The Authorization header of an enabled station on a human-only line (answers without a
    model, in the request itself)."""
    line = make_line(name="line-schema")
    _, token = station_with_token(line, name="cam-schema")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def data_team_user(make_line):
    """A data-team user on line-data, and the Authorization header of their API token."""
    from accounts.services import create_user
    from accounts.tokens import issue_api_token

    line = make_line(name="line-data")
    user = create_user(username="dana", role="data_team", line_names=[line.name], password=PASSWORD)
    _, raw = issue_api_token(user=user, name="schemathesis")
    return SimpleNamespace(user=user, line=line, auth={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def data_team(data_team_user, station_with_token, django_capture_on_commit_callbacks):
    """data_team_user, with two labeled items of their line frozen into a version, an export
    of it and an import into the line."""
    from datasets import dispatch, services
    from labeling.models import AnnotationRevision
    from tests.helpers import image_bytes, seed_inspection

    user, line = data_team_user.user, data_team_user.line
    station, _ = station_with_token(line, name="cam-data")
    for number, label in enumerate(["ok", "defective"]):
        AnnotationRevision.objects.create(
            inspection=seed_inspection(station, f"SN-{number}"),
            number=1,
            author=user,
            image_label=label,
            boxes=[],
            source="human",
        )
    version, _ = services.freeze_dataset(filters={}, user=user, name="v1")
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.start_export(version=version, fmt="csv", user=user)
        upload = SimpleNamespace(name="a.zip", size=3, chunks=lambda: [image_bytes()[:3]])
        dispatch.start_import(line=line, fmt="coco", upload=upload, user=user)
    data_team_user.version = version
    return data_team_user
