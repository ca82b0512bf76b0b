"""A worker that judges items loads the lines' models when it starts, so the first station
POST after a (re)start does not spend its budget importing torch and loading the model."""

import shutil

import pytest

from inspection import services
from ml import services as ml_services

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_inference_worker_loads_the_served_model_before_any_item_and_others_do_not(
    start_worker, trained_artifact, settings
):
    from ml.services import register_model_version

    target = settings.LOUPE_MODEL_DIR / "tiny.pt"
    if not target.exists():
        shutil.copy(trained_artifact, target)
    model = register_model_version(artifact=target, name="tiny")
    line = services.create_line(name="line-warm", level="full")
    ml_services.set_active_version(line=line, model_version=model, changed_by="test")

    # the export worker starts first, so it has had longer than the other to warm up
    exporter = start_worker("warm-datasets", queues="datasets")
    judge = start_worker("warm-inference", queues="inference")
    judge.wait_for_log("warmed up model tiny in", timeout=60)
    assert "warmed up" not in exporter.text()  # an export worker never needs torch
    judge.stop()
    exporter.stop()
