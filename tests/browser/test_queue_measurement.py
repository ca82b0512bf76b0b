"""The labeling-queue measurement page in Chromium: the vendored Chart.js draws both orders'
curves and the target line under the Content Security Policy."""

from ml.models import QueueMeasurement
from tests.browser.test_csp import watched


def _curve(points):
    return [
        {"labeled": b, "new_type_labeled": n, "new_type_recall": r, "auroc": 0.9}
        for b, n, r in points
    ]


def test_the_chart_draws_every_order_and_the_target(make_line, make_user, login, screenshot):
    line = make_line(name="line-a")
    measurement = QueueMeasurement.objects.create(
        params={"quick": False},
        result={
            "settings": {"new_type": "discoloration", "seeds": [1, 2, 3]},
            "strategy": {"name": "uncertainty + novelty"},
            "target_recall": 0.9,
            "pool": {"items": 400, "new_type_items_median": 100, "new_type_fraction": 0.25},
            "orders": {
                "queue": {
                    "curve": _curve([(20, 14, 0.5), (40, 28, 0.92)]),
                    "labeled_to_reach": 40,
                },
                "random": {"curve": _curve([(20, 5, 0.1), (40, 10, 0.4)])},
                "arrival": {"curve": _curve([(20, 4, 0.1), (40, 11, 0.45)])},
            },
            "verdict": {},
        },
    )
    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/models/queue-measurements/{measurement.pk}/")
    canvas = page.locator("#queue-chart")
    # three orders and the dashed target line
    page.wait_for_function("() => document.getElementById('queue-chart').dataset.drawn === '4'")
    box = canvas.bounding_box()
    assert box["width"] > 200 and box["height"] > 200
    assert page.evaluate("() => window.__cspViolations") == []
    assert console == []
    screenshot(page, "queue-measurement")
