"""The labeling-queue measurement page: both curves, the table beside them, linked from the
registry, no script inline."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from ml.models import QueueMeasurement
from ml.views import queue_measurement_view

pytestmark = pytest.mark.django_db


def _curve(points):
    return [
        {"labeled": b, "new_type_labeled": n, "new_type_recall": r, "auroc": a}
        for b, n, r, a in points
    ]


RESULT = {
    "settings": {"new_type": "discoloration", "seeds": [1, 2, 3], "reject_threshold": 0.8},
    "strategy": {"name": "uncertainty + novelty", "uncertainty_weight": 1.0, "novelty_weight": 1.0},
    "target_recall": 0.9,
    "pool": {"items": 400, "new_type_items_median": 101, "new_type_fraction": 0.2525},
    "first_model": {"new_type_recall": 0.01, "auroc": 0.71},
    "orders": {
        "queue": {
            "curve": _curve([(20, 13, 0.62, 0.9), (40, 27, 0.93, 0.95)]),
            "labeled_to_reach": 40,
            "new_type_labeled_to_reach": 27,
            "per_seed_labeled_to_reach": [40, 40, 60],
        },
        "random": {
            "curve": _curve([(20, 5, 0.11, 0.8), (40, 9, 0.47, 0.86)]),
            "labeled_to_reach": None,
            "new_type_labeled_to_reach": None,
            "per_seed_labeled_to_reach": [None, None, None],
        },
    },
    "verdict": {
        "queue_over_random": 0.976,
        "at_most_half_of_random": False,
        "at_most_50_new_type_items": True,
    },
    "seconds": 812.4,
}


@pytest.fixture
def measurement():
    return QueueMeasurement.objects.create(params={"quick": False}, result=RESULT)


@pytest.mark.parametrize("role", ["inspector", "supervisor", "data_team", "admin"])
def test_every_role_sees_the_curves_and_the_table(role, make_user, line, measurement):
    client = Client()
    client.force_login(make_user(f"u-{role}", role, [line]))
    response = client.get(reverse("ml:queue-measurement", args=[measurement.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    # the chart's data, for the page's script: both orders' points and the target line
    data = json.loads(
        re.search(
            r'<script id="queue-chart-data" type="application/json">(.*?)</script>', page
        ).group(1)
    )
    assert data["target_recall"] == 0.9
    assert [s["key"] for s in data["series"]] == ["queue", "random"]
    assert data["series"][0]["points"] == [
        {"labeled": 20, "recall": 0.62, "new_type_labeled": 13},
        {"labeled": 40, "recall": 0.93, "new_type_labeled": 27},
    ]
    # the table beside it: what each order needed, and a random order that never got there
    reach = page[page.index('id="queue-reach"') :]
    assert re.search(r'data-order="queue">\s*<th>Labeling queue</th>\s*<td[^>]*>40</td>', reach)
    assert re.search(r'data-order="random">\s*<th>Random order</th>\s*<td[^>]*>not reached', reach)
    assert "40, 40, 60" in reach
    assert "novelty_weight" in page  # every strategy parameter is shown
    assert 'src="/static/vendor/chartjs/chart.umd.min.js"' in page
    assert 'src="/static/js/queue_measurement.js"' in page
    # CSP: no script but the JSON data block is inline
    scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert scripts == [' id="queue-chart-data" type="application/json"']


def test_the_registry_links_the_latest_measurements(make_user, line, measurement):
    client = Client()
    client.force_login(make_user("u-sup", "supervisor", [line]))
    page = client.get(reverse("ml:registry")).content.decode()
    assert reverse("ml:queue-measurement", args=[measurement.pk]) in page
    assert "queue 40 labeled items, random –" in page


def test_an_unknown_measurement_is_not_found(make_user, line):
    client = Client()
    client.force_login(make_user("u-ins", "inspector", [line]))
    assert client.get(reverse("ml:queue-measurement", args=[999999])).status_code == 404


def test_steps_line_up_across_orders_even_when_one_order_lacks_a_step():
    result = {
        "orders": {
            "queue": {"curve": _curve([(10, 5, 0.5, 0.9), (20, 9, 0.9, 0.9)])},
            "random": {"curve": _curve([(20, 4, 0.2, 0.8)])},
        }
    }
    view = queue_measurement_view(result)
    assert [s["labeled"] for s in view["steps"]] == [10, 20]
    assert view["steps"][0]["points"][1] == {}  # random has no point at 10: an empty cell
    assert view["steps"][1]["points"][1]["new_type_recall"] == 0.2
