"""`manage.py demo_rollout` as issue 12 asks for it: on a fresh, empty embedded database (SQLite,
tasks in process), in its own process, generating and training what it needs. Its last line is
one JSON object, held here to the targets. About 6-8 minutes on two cores, so not part of
`make test`: `make rollout-check` runs it."""

from tests.helpers import run_embedded_demo


def test_demo_rollout_rolls_bad_challengers_back_and_switches_without_a_failure(tmp_path):
    figures = run_embedded_demo(tmp_path, ["demo_rollout"], timeout_s=30 * 60)

    assert figures["rolled_back"] is True
    assert figures["bad_challenger_items_decided"] <= 50
    assert figures["subtle_rolled_back"] is True
    assert figures["switch_failed_requests"] == 0
    assert figures["switches"] >= 4
    # the draw over the canary's items: a few hundred, so within three standard errors
    share, n = figures["canary_share_set"], figures["canary_items"]
    assert abs(figures["canary_share_measured"] - share) <= 3 * (share * (1 - share) / n) ** 0.5
