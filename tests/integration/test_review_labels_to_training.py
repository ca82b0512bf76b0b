"""Accept / reject in the review queue, all the way to a retrained candidate (issue 10, point 2),
through the product: a shadow line's station posts over HTTP and a real worker runs the model;
one inspector decides in the browser's review queue, another at a line-side terminal (the
review API); once the undo window and the labeling grace have passed the decisions are review
labels; the data team freezes a version of review labels only (the datasets API); a pipeline
run on it, in the worker, trains a candidate from labels without a single box.
"""

import json
import time

import pytest
from django.test import Client
from django.utils import timezone

from datasets.models import DatasetVersion
from demo.loop_scenario import truth_of, wait_for_run
from inspection import services as inspection_services
from inspection.models import Decision, ReviewState
from labeling.models import AnnotationRevision
from labeling.review_labels import LABEL_GRACE, label_final_decisions
from ml import pipeline
from ml import services as ml_services
from ml.models import ModelStatus, PipelineRunState
from tests.ml_registry.conftest import TINY_RUN

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = 48
PASSWORD = "review-labels-password-1"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The images of this test, apart from the shared media folder (the worker reads them)."""
    return tmp_path_factory.mktemp("review-labels-media")


@pytest.fixture(scope="module")
def worker(start_worker, media):
    # one process runs the line's model for the station and trains, as a small plant server
    worker = start_worker("review-labels", queues="inference,training", MEDIA_ROOT=str(media))
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import SurfaceConfig, generate_dataset

    root = tmp_path_factory.mktemp("review-labels-images")
    generate_dataset(root, count=ITEMS, seed=17, config=SurfaceConfig(size=64))
    return load_coco_folder(root)


def json_post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_review_decisions_become_labels_that_train_a_candidate(
    worker, media, samples, model_version, settings
):
    from accounts.services import create_user
    from accounts.tokens import issue_api_token

    settings.MEDIA_ROOT = media
    settings.LOUPE_UNDO_WINDOW_S = 1

    # a shadow line: the model runs on every item, and every item waits for a human
    line = inspection_services.create_line(
        name="press-shadow", level="shadow", latency_budget_ms=60_000
    )
    ml_services.set_active_version(line=line, model_version=model_version, changed_by="test")
    _, station_token = inspection_services.create_station(line=line, name="cam-1")
    station = Client(headers={"Authorization": f"Bearer {station_token}"})
    truth = {}
    for number, sample in enumerate(samples):
        serial = f"SN-{number}"
        with sample.path.open("rb") as image:
            answer = station.post(
                "/api/v1/inspections/", {"external_id": serial, "image": image}, secure=True
            )
        assert answer.status_code == 201, answer.content
        assert answer.json()["decision"] == "review"
        truth[serial] = truth_of(sample)[0]
    defective = sum(label == "defective" for label in truth.values())
    assert 8 <= defective <= ITEMS - 8  # the premise: both kinds, enough of each

    def user(name, role):
        return create_user(username=name, role=role, line_names=[line.name], password=PASSWORD)

    def bearer(owner) -> dict:
        return {"Authorization": f"Bearer {issue_api_token(user=owner, name='script')[1]}"}

    # Ines works the review page in a browser, Ivo a terminal beside the station
    browser = Client()
    browser.force_login(user("ines", "inspector"))
    terminal = Client(headers=bearer(user("ivo", "inspector")))
    seats = [
        (browser, "/review/claim", "/review/items/{}/"),
        (terminal, "/api/v1/review/next", "/api/v1/review/items/{}/"),
    ]
    decided = {}
    for turn in range(ITEMS):
        client, claim_url, item_url = seats[turn % 2]
        item = json_post(client, claim_url).json()["item"]
        assert item["model"] is None  # shadow: the human decides without the model's answer
        outcome = "reject" if truth[item["external_id"]] == "defective" else "accept"
        if turn == 1:
            # a slip at the terminal, taken back within the undo window and decided again (a
            # long window for the slip alone: a stalled test machine must not make it final)
            settings.LOUPE_UNDO_WINDOW_S = 60
            slip = "accept" if outcome == "reject" else "reject"
            url = item_url.format(item["id"])
            assert json_post(client, url + "decide", {"decision": slip}).status_code == 200
            assert json_post(client, url + "undo").status_code == 200
            settings.LOUPE_UNDO_WINDOW_S = 1
        answer = json_post(client, item_url.format(item["id"]) + "decide", {"decision": outcome})
        assert answer.status_code == 200, answer.content
        assert "model_agrees" not in answer.json()
        decided[item["id"]] = (item["external_id"], outcome)
    assert len(decided) == ITEMS
    assert json_post(terminal, "/api/v1/review/next").json() == {"item": None, "open_count": 0}

    # nothing is a label while it can still be undone
    assert label_final_decisions() == 0
    time.sleep(settings.LOUPE_UNDO_WINDOW_S + 0.2)
    ivos_first = list(decided)[1]  # the terminal's, undone once within the window
    late = json_post(terminal, f"/api/v1/review/items/{ivos_first}/undo")
    assert (late.status_code, late.json()["error"]) == (409, "undo_not_allowed")
    # the grace after the window (worker clocks) passes too: the periodic job labels them all
    assert label_final_decisions(now=timezone.now() + LABEL_GRACE) == ITEMS
    assert label_final_decisions(now=timezone.now() + LABEL_GRACE) == 0  # once only
    labels = AnnotationRevision.objects.filter(inspection__line=line)
    assert labels.count() == ITEMS and set(labels.values_list("source", flat=True)) == {"review"}
    assert not labels.exclude(boxes=[]).exists()
    by_serial = dict(labels.values_list("inspection__external_id", "image_label"))
    assert by_serial == truth  # the undone slip left no label: its final decision did
    assert set(labels.values_list("author__username", flat=True)) == {"ines", "ivo"}
    assert Decision.objects.filter(inspection__line=line).count() == ITEMS

    # the data team freezes the review labels alone, over the datasets API
    data_team = Client(headers=bearer(user("dana", "data_team")))
    frozen = json_post(
        data_team,
        "/api/v1/datasets/",
        {"name": "review-only", "filters": {"lines": [line.name], "sources": ["review"]}},
    )
    assert frozen.status_code == 201, frozen.content
    version = DatasetVersion.objects.get(pk=frozen.json()["id"])
    assert version.item_count == ITEMS
    assert set(version.items.values_list("source", flat=True)) == {"review"}
    assert version.items.filter(image_label="defective").count() == defective

    # retraining on that version, in the worker: the schema check passes box-less defectives
    run = pipeline.start_run(
        line=line, started_by=version.created_by, config=TINY_RUN, dataset_version=version
    )
    run = wait_for_run(run, timeout_s=150, poll_s=0.5)
    assert run.state == PipelineRunState.SUCCEEDED, run.error
    artifacts = {step.name: step.artifacts for step in run.steps.all()}
    statistics = artifacts["statistics"]
    assert sum(statistics["image_level_only"].values()) == defective
    assert artifacts["train"]["hyperparameters"]["images_without_map_target"] == (
        statistics["image_level_only"].get("train", 0)
    )
    candidate = run.candidate
    assert candidate.status == ModelStatus.CANDIDATE
    assert (candidate.line, candidate.dataset_version) == (line, version)
    assert candidate.parent == model_version  # warm-started from the line's active model
    line.refresh_from_db()
    assert line.active_model == model_version  # a person promotes it; nothing changed yet
    assert set(line.inspections.values_list("review_item__state", flat=True)) == {
        ReviewState.DECIDED
    }
