"""The OpenAPI schema and its Swagger page are for those who may use an API: a station, a
script with an API token, a signed-in user. Nobody anonymous reads them."""

import pytest
from django.contrib.auth import get_user_model

from tests.api_schema.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def get(client, url, authorization=None):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    return client.get(url, secure=True, **extra)


def test_anonymous_gets_a_401_for_the_schema_and_the_login_page_for_the_docs(client):
    schema = get(client, "/api/schema/?format=json")
    assert schema.status_code == 401
    assert schema.json()["error"] == "not_authenticated"
    assert b"/api/v1/" not in schema.content
    docs = get(client, "/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"].startswith("/login/?next=/api/docs/")


@pytest.mark.parametrize("authorization", ["Bearer lps_wrong", "Bearer lpu_wrong", "Bearer x"])
def test_a_token_that_is_not_valid_gets_a_401(client, authorization):
    response = get(client, "/api/schema/?format=json", authorization)
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_a_station_reads_the_schema_but_not_once_disabled(client, station_auth, settings):
    from inspection.models import Station

    response = get(client, "/api/schema/", station_auth["Authorization"])
    assert response.status_code == 200
    assert b"/api/v1/inspections/" in response.content
    Station.objects.update(is_enabled=False)
    assert get(client, "/api/schema/", station_auth["Authorization"]).status_code == 403


def test_a_script_reads_the_schema_with_its_api_token(client, data_team_user):
    response = get(client, "/api/schema/?format=json", data_team_user.auth["Authorization"])
    assert response.status_code == 200
    assert "/api/v1/datasets/" in response.json()["paths"]


def test_a_signed_in_user_reads_the_schema_and_the_docs_without_a_cdn(client, make_line):
    from accounts.services import create_user

    make_line(name="line-docs")
    create_user(username="ina", role="inspector", line_names=["line-docs"], password=PASSWORD)
    client.force_login(get_user_model().objects.get(username="ina"))
    assert get(client, "/api/schema/").status_code == 200
    docs = get(client, "/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "https://" not in html.split("<body")[0]


def test_an_unknown_api_url_is_a_json_404(client, station_auth):
    response = get(client, "/api/v1/inspections/not-a-number/", station_auth["Authorization"])
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no API endpoint at /api/v1/inspections/not-a-number/",
    }


@pytest.mark.parametrize("method", ["put", "patch", "delete", "trace"])
def test_a_method_an_operation_does_not_have_is_a_405_not_a_403(client, data_team_user, method):
    response = getattr(client, method)(
        "/api/v1/datasets/", secure=True, HTTP_AUTHORIZATION=data_team_user.auth["Authorization"]
    )
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_head_reads_what_get_reads(client, data_team_user):
    response = client.head(
        "/api/v1/datasets/", secure=True, HTTP_AUTHORIZATION=data_team_user.auth["Authorization"]
    )
    assert response.status_code == 200
