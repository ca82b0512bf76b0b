"""Concept drift: disagreement and escape rate over windows of final human-checked items, with
Wilson intervals and a verdict against the model's first items; CBPE's expected agreement;
the page's section for whoever sees the line, nobody else's."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from inspection.models import Outcome
from loupe.common.stats import wilson_interval
from monitoring import concept
from monitoring.concept import CheckedItem, Estimate, judge, rolling_windows, window_of

REJECT, ACCEPT = Outcome.REJECT, Outcome.ACCEPT


def item(p, human, *, unbiased=True, threshold=0.8):
    model = REJECT if p >= threshold else ACCEPT
    return CheckedItem(p, threshold, human, model == human, unbiased)


def items(n_agree, n_missed, n_false_alarm=0, *, defective_caught=0):
    """n_agree accepted by both (plus defective_caught rejected by both), n_missed defects the
    model accepted, n_false_alarm good items it rejected."""
    return (
        [item(0.1, ACCEPT)] * n_agree
        + [item(0.95, REJECT)] * defective_caught
        + [item(0.1, REJECT)] * n_missed
        + [item(0.9, ACCEPT)] * n_false_alarm
    )


# Pure figures ---------------------------------------------------------------------------------


def test_rates_and_their_wilson_intervals():
    window = window_of("w", items(90, 4, 6, defective_caught=0) + [item(0.95, REJECT)] * 6)
    assert window.items == 106
    assert window.disagreement.count == 10 and window.disagreement.n == 106
    assert window.disagreement.interval == wilson_interval(10, 106)
    # the miss rate as inspection.evidence defines it: among items the human rejected
    assert (window.escape.count, window.escape.n) == (4, 10)
    assert window.escape.interval == pytest.approx(wilson_interval(4, 10))
    assert window.realized_agreement.rate == pytest.approx(96 / 106)
    shown = window.as_dict()["disagreement"]
    assert shown["pct"] == round(100 * 10 / 106, 2)
    assert shown["low_pct"] < shown["pct"] < shown["high_pct"]


def test_items_seen_with_the_model_count_only_in_the_all_checked_figure():
    unbiased = items(95, 5)
    seen = [item(0.1, ACCEPT, unbiased=False)] * 100
    window = window_of("w", unbiased, unbiased + seen)
    assert window.disagreement.as_dict()["pct"] == 5.0
    assert window.disagreement_all.count == 5 and window.disagreement_all.n == 200


def test_the_verdict_flips_on_a_window_of_many_disagreements_and_not_at_the_reference_rate():
    reference = window_of("ref", items(190, 6, 4, defective_caught=0) + [item(0.95, REJECT)] * 14)
    assert reference.disagreement.rate == pytest.approx(10 / 214)

    same = judge(window_of("same", items(95, 3, 2) + [item(0.95, REJECT)] * 7), reference)
    assert same.verdict == concept.OK and same.reasons == ()

    worse = judge(window_of("worse", items(75, 20, 5) + [item(0.95, REJECT)] * 7), reference)
    assert worse.verdict == concept.DRIFT
    assert worse.reasons == ("disagreement", "escape")


def test_no_verdict_on_too_few_items():
    reference = window_of("ref", items(200, 0))
    assert judge(window_of("w", items(0, 30)), reference).verdict == concept.TOO_FEW
    assert judge(window_of("w", items(0, 100)), None).verdict == concept.TOO_FEW
    assert judge(window_of("w", items(0, 100)), window_of("r", items(10, 0))).verdict == (
        concept.TOO_FEW
    )


def test_cbpe_is_the_mean_chance_of_being_right():
    rejected = [item(0.9, REJECT)] * 50 + [item(0.9, ACCEPT)] * 50
    estimate = window_of("w", rejected).tally.estimate
    assert estimate.expected == pytest.approx(0.9)
    low, high = estimate.interval
    # sum of 100 Bernoulli(0.9): sd 3 items, so about 0.9 +- 0.059
    assert low == pytest.approx(0.9 - 1.96 * 0.03, abs=1e-3)
    assert high == pytest.approx(0.9 + 1.96 * 0.03, abs=1e-3)
    # accepted at p = 0.2: right with chance 0.8, whatever the human said
    accepted = [item(0.2, ACCEPT)] * 10 + [item(0.2, REJECT)] * 10
    assert window_of("w", accepted).tally.estimate.expected == pytest.approx(0.8)
    # the estimate needs no label: concept drift (all wrong) leaves it where it was
    assert window_of("w", [item(0.9, ACCEPT)] * 100).tally.estimate.expected == pytest.approx(0.9)
    assert Estimate.of([]).expected is None and Estimate.of([]).interval == (0.0, 1.0)


def test_rolling_windows_end_at_the_newest_item():
    sequence = items(300, 0)
    windows = rolling_windows(sequence, size=100, step=50)
    assert [w.items for w in windows] == [100] * 5
    assert windows[-1].label == "items 201–300"
    assert windows[0].label == "items 1–100"
    assert [w.items for w in rolling_windows(items(30, 0))] == [30]
    assert rolling_windows([]) == []


# From the database ------------------------------------------------------------------------------


@pytest.fixture
def shadow_line(make_line, station_with_token, model, seed, inspector, decide):
    """A shadow line of the seeded model: every item goes to a human who does not see it."""
    from inspection.models import Line

    line = make_line("concept-line", level="shadow")
    Line.objects.filter(pk=line.pk).update(active_model=model)
    line.refresh_from_db()
    camera, _ = station_with_token(line, "cam-c")
    user = inspector(line)
    return line, camera, user


def _settle(review_items):
    """Move decisions back past the undo window: final."""
    from inspection.models import ReviewItem

    ReviewItem.objects.filter(pk__in=[r.pk for r in review_items]).update(
        decided_at=timezone.now() - timedelta(minutes=5)
    )


@pytest.mark.django_db
def test_only_final_decisions_of_the_active_model_count(shadow_line, seed, decide):
    line, camera, user = shadow_line
    final = [decide(seed(camera, f"a{n}", p=0.1), ACCEPT, user) for n in range(6)]
    final += [decide(seed(camera, f"m{n}", p=0.1), REJECT, user) for n in range(2)]  # missed
    final += [decide(seed(camera, f"c{n}", p=0.95), REJECT, user) for n in range(2)]
    _settle(final)
    decide(seed(camera, "fresh", p=0.1), REJECT, user)  # inside the undo window: not yet
    seed(camera, "open", p=0.1)  # undecided

    summary = concept.concept_summary(line, span=timedelta(days=1), span_label="Day")
    last_100, _, day = summary["windows"]
    for window in (last_100, day, summary["reference"]):
        assert window["items"] == 10
        assert (window["disagreement"]["count"], window["disagreement"]["n"]) == (2, 10)
        assert (window["escape"]["count"], window["escape"]["n"]) == (2, 4)
        low, high = wilson_interval(2, 10)
        assert window["disagreement"]["low_pct"] == round(100 * low, 2)
        assert window["disagreement"]["high_pct"] == round(100 * high, 2)
        assert window["verdict"] in ("", concept.TOO_FEW)
    # CBPE: 8 accepted at 0.1 (0.9 each), 2 rejected at 0.95
    assert last_100["estimated_agreement"]["pct"] == pytest.approx(100 * (8 * 0.9 + 1.9) / 10)
    assert day["estimated_agreement"]["pct"] == pytest.approx(100 * (8 * 0.9 + 1.9) / 10)
    assert day["disagreement_all"]["n"] == 10
    # CBPE on every prediction, checked or not: the open and the fresh items count too
    assert summary["estimate_latest"]["n"] == 12
    assert summary["estimate_latest"]["pct"] == pytest.approx(100 * (10 * 0.9 + 1.9) / 12, abs=0.01)
    # a long range counts its latest items only, at most SPAN_LIMIT of them
    now = timezone.now()
    capped = concept._span_tally(line, now - timedelta(days=30), now, limit=3)
    assert capped.all_items == 3


@pytest.mark.django_db
def test_a_line_without_an_active_model_has_no_figures(make_line):
    line = make_line("concept-empty", level="human_only")
    assert concept.concept_summary(line, span=timedelta(hours=1), span_label="h") == {
        "active_model": False,
        "windows": [],
        "chart": {"windows": []},
    }


@pytest.mark.django_db
def test_the_page_shows_the_section_for_its_line_and_404s_for_another(
    shadow_line, make_line, seed, decide
):
    line, camera, user = shadow_line
    done = [
        decide(seed(camera, f"p{n}", p=0.1), ACCEPT if n % 4 else REJECT, user) for n in range(8)
    ]
    _settle(done)
    other = make_line("concept-other", level="shadow")
    client = Client()
    client.force_login(user)
    response = client.get(f"/lines/{line.pk}/monitoring/", {"range": "hour"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="concept-title"' in html and 'id="concept-table"' in html
    assert 'data-concept-chart="rates"' in html
    start = html.index('<script id="concept-data" type="application/json">')
    data = json.loads(html[start:].split(">", 1)[1].split("</script>", 1)[0])
    assert data["windows"][-1]["items"] == 8
    assert data["windows"][-1]["disagreement"]["count"] == 2
    assert data["reference"]["items"] == 8
    assert client.get(f"/lines/{other.pk}/monitoring/").status_code == 404


def test_fishers_exact_test_calls_nine_in_a_hundred_drift_against_four_in_two_hundred():
    # every item defect-free by the human, the model rejecting some: disagreement only
    reference = window_of("ref", items(196, 0, 4))
    assert judge(window_of("9", items(91, 0, 9)), reference).reasons == ("disagreement",)
    assert judge(window_of("8", items(92, 0, 8)), reference).verdict == concept.OK
    # the two 95% intervals still overlap at 9: the exact test sees it one item sooner
    assert (
        window_of("9", items(91, 0, 9)).disagreement.interval[0]
        < (reference.disagreement.interval[1])
    )
