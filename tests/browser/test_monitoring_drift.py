"""The monitoring page's drift section in Chromium: its three charts draw under the Content
Security Policy from the json_script data, and the drifting station is named."""

import numpy as np

from inspection.models import Prediction
from ml.engine import drift as engine_drift
from monitoring import drift
from monitoring.models import DriftReference
from tests.browser.test_csp import watched
from tests.helpers import seed_inspection, seed_model_version

ITEMS = 50


def _records(rng, shift: float) -> list[dict]:
    return [
        {
            **{name: float(rng.normal() + shift) for name in engine_drift.STATISTICS},
            "embedding": (rng.normal(size=4) + shift).tolist(),
            "schema": {"width": 128, "height": 128, "mode": "RGB", "channels": 3},
            "skew": [],
        }
        for _ in range(ITEMS)
    ]


def test_the_drift_charts_render_and_name_the_drifting_station(
    make_line, station_with_token, make_user, login, screenshot
):
    rng = np.random.default_rng(3)
    line = make_line(name="line-d", level="full", audit_fraction=0.0)
    model = seed_model_version("browser-drift")
    # the reference a trained model would give (monitoring.drift builds it from its dataset
    # version); synthetic figures keep this test to the page
    reference = DriftReference.objects.create(
        model_version=model,
        items=200,
        jitter=0.0,
        build_seconds=0.0,
        data=engine_drift.Reference(
            gains=[1.0],
            statistics={n: [rng.normal(size=200).tolist()] for n in engine_drift.STATISTICS},
            embeddings=[rng.normal(size=(200, 4)).tolist()],
            probabilities=[rng.uniform(size=200).tolist()],
            schema={},
        ).to_dict(),
    )
    for name, shift in (("cam-steady", 0.0), ("cam-dark", 1.0)):
        station, _ = station_with_token(line, name)
        for n, record in enumerate(_records(rng, shift)):
            inspection = seed_inspection(
                station, f"{name}-{n}", probability=float(rng.uniform()), model_version=model
            )
            Prediction.objects.filter(inspection=inspection).update(input_stats=record)
        drift.check_station(line=line, station=station, reference=reference)

    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/lines/{line.pk}/monitoring/")
    page.wait_for_function("() => document.getElementById('drift-charts').dataset.drawn === '3'")
    assert page.locator("#drift-alarm").inner_text() == "Drift on cam-dark."
    assert page.locator("#drift-table tr[data-verdict=data_drift]").get_attribute(
        "data-station"
    ) == ("cam-dark")
    # two stations' bars and the alarm level
    assert page.locator("canvas[data-drift-chart=tests]").get_attribute("data-drawn") == "3"
    box = page.locator("canvas[data-drift-chart=histogram]").bounding_box()
    assert box["width"] > 200 and box["height"] > 150
    page.locator("#drift").scroll_into_view_if_needed()
    screenshot(page, "monitoring-drift")
    assert page.evaluate("() => window.__cspViolations") == []
    assert console == []
