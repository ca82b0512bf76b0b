"""The review API against its OpenAPI schema: schemathesis fuzzes every operation as an
inspector's terminal, and every answer must be one the schema documents."""

from types import SimpleNamespace

import pytest

from tests.api_schema.conftest import PASSWORD
from tests.api_schema.test_schemathesis import BASE_URL, CHECKS, SETTINGS, call, schema
from tests.helpers import seed_inspection, seed_model_version

review_schema = schema.include(path_regex="^/api/v1/review/")
REGION = {"x0": 1.0, "y0": 2.0, "x1": 30.5, "y1": 40.0, "label": "scratch", "score": 0.9}

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture
def inspector(make_line, station_with_token):
    """An inspector's terminal on an assist line with open items (the model's regions shown)
    and a decided one, so the small ids fuzzing tries first meet real rows."""
    from accounts.services import create_user
    from accounts.tokens import issue_api_token
    from review.services import decide_review_item

    line = make_line(name="line-review", level="assist", audit_fraction=0.0)  # none blind
    station, _ = station_with_token(line, name="cam-review")
    model = seed_model_version()
    items = [
        seed_inspection(
            station, f"SN-{n}", probability=0.5, regions=[REGION], model_version=model
        ).review_item
        for n in range(4)
    ]
    user = create_user(username="ina", role="inspector", line_names=[line.name], password=PASSWORD)
    decide_review_item(item=items[-1], inspector=user, outcome="reject")
    _, raw = issue_api_token(user=user, name="terminal")
    return SimpleNamespace(user=user, items=items, auth={"Authorization": f"Bearer {raw}"})


@review_schema.parametrize()
@SETTINGS
def test_the_review_api_answers_as_its_schema_says(case, inspector):
    case.call_and_validate(base_url=BASE_URL, headers=inspector.auth, checks=CHECKS)


def test_every_review_success_answer_matches_the_schema(inspector):
    auth = inspector.auth
    item = call("POST /api/v1/review/next", auth, body={}, expect=200).json()["item"]
    assert item["model"]["regions"] == [REGION]
    path = {"id": item["id"]}
    call("GET /api/v1/review/items/{id}/image", auth, path_parameters=path, expect=200)
    call("POST /api/v1/review/items/{id}/keep", auth, path_parameters=path, body={}, expect=200)
    decide = "POST /api/v1/review/items/{id}/decide"
    call(decide, auth, path_parameters=path, body={"decision": "accept"}, expect=200)
    call(decide, auth, path_parameters=path, body={"decision": "reject"}, expect=409)
    call("POST /api/v1/review/items/{id}/undo", auth, path_parameters=path, body={}, expect=200)
    call("POST /api/v1/review/items/{id}/release", auth, path_parameters=path, body={}, expect=200)
    everything_decided = {"line": "line-review", "exclude": [i.pk for i in inspector.items]}
    empty = call("POST /api/v1/review/next", auth, body=everything_decided, expect=200).json()
    assert empty == {"item": None, "open_count": 3}
