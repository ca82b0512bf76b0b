"""The monitoring page: a line's figures for whoever sees the line, nobody else's; each range
and its points; a clear 400 for a range that does not exist."""

import json

import pytest
from django.test import Client

from monitoring import aggregation

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_lines(make_line, station_with_token, seed, inspector):
    ours = make_line("mon-ours", level="partial", audit_fraction=0.0)
    theirs = make_line("mon-theirs", level="partial", audit_fraction=0.0)
    cam_ours, _ = station_with_token(ours, "cam-o")
    cam_theirs, _ = station_with_token(theirs, "cam-t")
    for n in range(3):
        seed(cam_ours, f"o{n}", p=0.9, latency_ms=30)
    for n in range(5):
        seed(cam_theirs, f"t{n}", p=0.1, latency_ms=30)
    aggregation.aggregate_recent()
    client = Client()
    client.force_login(inspector(ours))
    return ours, theirs, client


def _data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="monitoring-data" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_a_member_sees_their_line_and_only_its_figures(two_lines):
    ours, theirs, client = two_lines
    response = client.get(f"/lines/{ours.pk}/monitoring/")
    assert response.status_code == 200
    data = _data(response)
    assert sum(data["series"]["items_per_min"]) > 0
    assert response.context["figures"].total.items == 3
    assert response.context["figures"].total.reject_pct == 100.0
    assert data["thresholds"]["latency_budget_ms"] == ours.latency_budget_ms
    assert data["thresholds"]["agreement_target_pct"] == 95.0

    assert client.get(f"/lines/{theirs.pk}/monitoring/").status_code == 404


@pytest.mark.parametrize(
    "range_key, points", [("hour", 60), ("shift", 48), ("day", 96), ("30d", 120)]
)
def test_each_range_has_its_points_in_the_charts_and_the_table(two_lines, range_key, points):
    ours, _, client = two_lines
    response = client.get(f"/lines/{ours.pk}/monitoring/", {"range": range_key})
    assert response.status_code == 200
    data = _data(response)
    assert data["range"] == range_key
    assert len(data["labels"]) == points
    assert all(len(values) == points for values in data["series"].values())
    assert response.content.decode().count("<tr>") == points + 1  # and the header
    assert response.context["figures"].total.items == 3


def test_an_unknown_range_is_a_clear_400(two_lines):
    ours, _, client = two_lines
    response = client.get(f"/lines/{ours.pk}/monitoring/", {"range": "week"})
    assert response.status_code == 400
    assert "Unknown range 'week'" in response.content.decode()


def test_the_line_page_links_to_its_monitoring(two_lines):
    ours, _, client = two_lines
    html = client.get(f"/lines/{ours.pk}/").content.decode()
    assert f'href="/lines/{ours.pk}/monitoring/"' in html


def test_the_30_day_page_reads_a_fixed_number_of_queries(two_lines, django_assert_max_num_queries):
    ours, _, client = two_lines
    # 16, and since alerts 5 more: the rules' thresholds drawn, the top bar's count and the
    # page's open alerts (each with visible_lines' admin check)
    with django_assert_max_num_queries(21):
        assert client.get(f"/lines/{ours.pk}/monitoring/", {"range": "30d"}).status_code == 200
