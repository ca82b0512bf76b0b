"""Who may read /metrics: the scrape token, or an allowed address reached directly."""

import ipaddress
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-the-tests"


@pytest.fixture(autouse=True)
def _metrics_settings(settings, tmp_path):
    settings.LOUPE_METRICS_DIR = tmp_path / "metrics"
    settings.LOUPE_METRICS_TOKEN = TOKEN
    settings.LOUPE_METRICS_ALLOW = [ipaddress.ip_network("10.0.0.0/8")]


def scrape(client, address="192.0.2.7", **headers):
    return client.get("/metrics", REMOTE_ADDR=address, headers=headers)


def test_the_token_opens_it_from_any_address(client):
    response = scrape(client, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE loupe_station_requests_total counter" in response.content


def test_an_allowed_address_needs_no_token(client):
    assert scrape(client, address="10.20.30.40").status_code == 200


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", "Bearer station-token"]
)
def test_a_wrong_token_is_401_even_from_an_allowed_address(client, header):
    response = scrape(client, address="10.20.30.40", Authorization=header)
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "detail": "the metrics token is not valid",
    }


def test_an_address_outside_the_list_is_403_and_told_how_to_get_in(client):
    response = scrape(client, address="192.0.2.7")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "LOUPE_METRICS_ALLOW" in response.json()["detail"]


@pytest.mark.parametrize(
    "header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"], ids=["xff", "real-ip", "forwarded"]
)
def test_a_request_through_a_proxy_is_not_judged_by_the_proxy_address(client, header):
    """nginx reaches gunicorn from 127.0.0.1 (or an allowed address): without the token,
    whatever came through it is refused."""
    assert scrape(client, address="10.0.0.1", **{header: "203.0.113.9"}).status_code == 403
    assert scrape(client, address="10.0.0.1", **{header: "203.0.113.9"},
                  Authorization=f"Bearer {TOKEN}").status_code == 200  # fmt: skip


def test_without_a_configured_token_any_token_is_refused(client, settings):
    settings.LOUPE_METRICS_TOKEN = ""
    assert scrape(client, address="10.0.0.1", Authorization="Bearer ").status_code == 401
    assert scrape(client, address="10.0.0.1", Authorization="Bearer x").status_code == 401


def test_it_only_answers_reads(client):
    response = client.post("/metrics", REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 405


def _settings_in_a_fresh_process(env: dict, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"from loupe import settings as s; {code}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_malformed_allow_list_stops_startup_with_its_name():
    env = {**os.environ, "LOUPE_METRICS_ALLOW": "10.0.0.0/8, the-office"}
    result = _settings_in_a_fresh_process(env, "pass")
    assert result.returncode != 0
    assert "LOUPE_METRICS_ALLOW entries must be addresses or CIDR networks, got 'the-office'" in (
        result.stderr
    )


def test_the_default_list_is_this_machine_only():
    env = {k: v for k, v in os.environ.items() if k != "LOUPE_METRICS_ALLOW"}
    result = _settings_in_a_fresh_process(env, "print(*s.LOUPE_METRICS_ALLOW)")
    assert result.stdout.split() == ["127.0.0.1/32", "::1/128"], result.stderr
