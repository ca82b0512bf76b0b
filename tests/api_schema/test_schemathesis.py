"""The OpenAPI schema against the API it describes: schemathesis fuzzes every operation, as a
station and as a data-team user, and every answer must be one the schema documents.

The schema is the one /api/schema/ serves (drf-spectacular's generator, in process); requests
go to the WSGI application in process, against the test database.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import image_bytes, seed_inspection, seed_model_version

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 50
# as in production, behind TLS (the settings may redirect plain http)
BASE_URL = "https://localhost"
# one station, user and token for all of an operation's examples: state carries over on purpose
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()
schema.config.generation.update(max_examples=EXAMPLES)
station_schema = schema.include(path_regex="^/api/v1/inspections/")
datasets_schema = schema.include(path_regex="^/api/v1/datasets/")

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@station_schema.parametrize()
@SETTINGS
def test_the_station_api_answers_as_its_schema_says(case, station_auth):
    case.call_and_validate(base_url=BASE_URL, headers=station_auth, checks=CHECKS)


@datasets_schema.parametrize()
@SETTINGS
def test_the_datasets_api_answers_as_its_schema_says(case, data_team):
    case.call_and_validate(base_url=BASE_URL, headers=data_team.auth, checks=CHECKS)


# Fuzzed ids seldom meet a row, so every success answer is also checked on purpose, once.


def call(operation: str, auth: dict, *, expect: int, **request):
    method, path = operation.split(" ")
    case = schema[path][method].Case(**request)
    response = case.call_and_validate(base_url=BASE_URL, headers=auth, checks=CHECKS)
    assert response.status_code == expect, response.text[:500]
    return response


def test_every_station_success_answer_matches_the_schema(station_auth):
    image = {"image": image_bytes("PNG"), "external_id": "SN-1", "metadata": '{"lot": "L-1"}'}
    multipart = {"media_type": "multipart/form-data"}
    created = call("POST /api/v1/inspections/", station_auth, body=image, expect=201, **multipart)
    call("POST /api/v1/inspections/", station_auth, body=image, expect=200, **multipart)
    other = {**image, "image": image_bytes("PNG", seed=9)}
    call("POST /api/v1/inspections/", station_auth, body=other, expect=409, **multipart)
    path = {"id": created.json()["id"]}
    call("GET /api/v1/inspections/{id}/", station_auth, path_parameters=path, expect=200)


def test_an_answer_with_the_models_output_matches_the_schema(make_line, station_with_token):
    model = seed_model_version()
    line = make_line(name="line-assist", level="assist", audit_fraction=0.0)  # never blind
    station, token = station_with_token(line, name="cam-assist")
    region = {"x0": 1.0, "y0": 2.0, "x1": 30.5, "y1": 40.0, "label": "scratch", "score": 0.9}
    item = seed_inspection(station, "SN-9", probability=0.7, regions=[region], model_version=model)
    auth = {"Authorization": f"Bearer {token}"}
    answer = call(
        "GET /api/v1/inspections/{id}/", auth, path_parameters={"id": item.pk}, expect=200
    )
    assert answer.json()["regions"] == [region]


def test_every_datasets_success_answer_matches_the_schema(data_team):
    auth, line, version = data_team.auth, data_team.line, data_team.version
    call("GET /api/v1/datasets/", auth, expect=200)
    same = call("POST /api/v1/datasets/", auth, body={}, expect=200)
    assert same.json()["id"] == version.pk
    path = {"id": version.pk}
    call("GET /api/v1/datasets/{id}/", auth, path_parameters=path, expect=200)
    call("GET /api/v1/datasets/{id}/manifest.csv", auth, path_parameters=path, expect=200)
    call("GET /api/v1/datasets/{id}/exports/", auth, path_parameters=path, expect=200)
    export = call(
        "POST /api/v1/datasets/{id}/exports/",
        auth,
        path_parameters=path,
        body={"format": "coco"},
        expect=202,
    ).json()
    call(
        "GET /api/v1/datasets/exports/{id}/", auth, path_parameters={"id": export["id"]}, expect=200
    )
    call(
        "GET /api/v1/datasets/exports/{id}/download/",
        auth,
        path_parameters={"id": export["id"]},
        expect=200,
    )
    archive = {"archive": b"not a zip", "line": line.name, "format": "coco"}
    started = call(
        "POST /api/v1/datasets/imports/",
        auth,
        body=archive,
        media_type="multipart/form-data",
        expect=202,
    ).json()
    call("GET /api/v1/datasets/imports/", auth, expect=200)
    imported = call(
        "GET /api/v1/datasets/imports/{id}/",
        auth,
        path_parameters={"id": started["id"]},
        expect=200,
    )
    assert imported.json()["state"] == "failed"
