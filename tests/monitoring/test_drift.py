"""Data drift on a line (monitoring.drift): the drift record written on the prediction path,
schema skew flagged per item and shown, the reference built once from the dataset version the
model was trained on, and a shifted camera's window flagged where an unshifted one is not."""

import io
import json
import shutil

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from inspection import services
from inspection.images import validate_image
from inspection.models import Prediction
from ml.engine import drift as engine_drift
from ml.engine.generator import SurfaceConfig, render_surface
from monitoring import drift
from monitoring.models import DriftCheck, DriftReference

pytestmark = pytest.mark.django_db

ITEMS = 60  # per reference and per window: enough for the tests, small enough to be quick
SCHEDULE = drift.DriftSchedule(window=ITEMS, step=20)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def camera(seed: int, count: int, **knobs) -> list[bytes]:
    config = SurfaceConfig(**knobs)
    return [png(render_surface(np.random.default_rng([seed, i]), config)[0]) for i in range(count)]


def receive(station, external_id: str, data: bytes):
    image = validate_image(data, max_bytes=10_000_000, max_pixels=10_000_000)
    inspection, _ = services.receive_inspection(
        station=station, external_id=external_id, image=image, metadata={}
    )
    return inspection


def serve(station, prefix: str, images: list[bytes]) -> list[Prediction]:
    """Each image through the station path's prediction and routing, as a worker runs it."""
    predictions = []
    for n, data in enumerate(images):
        inspection = receive(station, f"{prefix}-{n}", data)
        services.predict_and_route(inspection_id=inspection.pk)
        predictions.append(Prediction.objects.get(inspection=inspection))
    return predictions


@pytest.fixture
def trained_line(make_line, station_with_token, trained_artifact, settings, django_user_model):
    """A full-automation line whose active model was trained on a dataset version of its own
    labeled items (the tiny session model, registered with that version as its lineage)."""
    from datasets.services import freeze_dataset
    from labeling.models import AnnotationRevision
    from ml import services as ml_services

    line = make_line("drift-line", level="full", audit_fraction=0.0)
    author = django_user_model.objects.create_user("labeler", password="pw-drift-1")
    labeler, _ = station_with_token(line, "cam-history")
    for n, data in enumerate(camera(1, ITEMS)):
        AnnotationRevision.objects.create(
            inspection=receive(labeler, f"hist-{n}", data),
            number=1,
            author=author,
            image_label="ok" if n % 2 else "defective",
            boxes=[],
            source="human",
        )
    version, _ = freeze_dataset(filters={}, name="drift-v1")
    target = settings.LOUPE_MODEL_DIR / "drift-tiny.pt"
    shutil.copy(trained_artifact, target)
    model = ml_services.register_model_version(
        artifact=target, name="drift-tiny", line=line, dataset_version=version
    )
    ml_services.set_active_version(line=line, model_version=model, changed_by="test")
    line.refresh_from_db()
    return line


def test_the_prediction_path_records_the_drift_record(trained_line, station_with_token):
    station, _ = station_with_token(trained_line, "cam-1")
    (prediction,) = serve(station, "a", camera(7, 1))
    record = prediction.input_stats
    assert set(engine_drift.STATISTICS) <= set(record)
    assert 0.0 < record["brightness"] < 1.0 and record["sharpness"] > 0
    assert len(record["embedding"]) == engine_drift.EMBEDDING_SIZE
    assert record["schema"] == {"width": 128, "height": 128, "mode": "RGB", "channels": 3}
    assert record["skew"] == []


def test_an_input_the_model_never_saw_is_flagged_on_the_item(
    trained_line, station_with_token, admin_client
):
    station, _ = station_with_token(trained_line, "cam-1")
    grey = Image.linear_gradient("L").resize((256, 200))
    (prediction,) = serve(station, "odd", [png(grey)])
    assert prediction.input_stats["skew"] == ["size 256x200", "mode L", "1 channels"]
    (usual,) = serve(station, "usual", camera(8, 1))
    assert usual.input_stats["skew"] == []

    page = admin_client.get(f"/inspections/{prediction.inspection_id}/").content.decode()
    assert "never seen: size 256x200, mode L, 1 channels" in page
    page = admin_client.get(f"/inspections/{usual.inspection_id}/").content.decode()
    assert "never seen" not in page and "as trained" in page


def test_the_reference_is_built_once_from_the_models_dataset_version(trained_line):
    run = drift.check_drift(schedule=SCHEDULE)
    assert run.references_built == ["drift-tiny"]
    reference = DriftReference.objects.get()
    assert reference.dataset_version.name == "drift-v1"
    assert reference.items == ITEMS
    assert reference.jitter == 0.25  # the training's augmentation
    assert reference.data["schema"] == {"sizes": [[128, 128]], "modes": ["RGB"], "channels": [3]}
    assert len(reference.data["gains"]) == 9 and 1.0 in reference.data["gains"]
    assert drift.check_drift(schedule=SCHEDULE).references_built == []
    assert DriftReference.objects.count() == 1


def test_a_model_without_a_dataset_version_is_skipped_and_says_why(model_version, make_line):
    from ml import services as ml_services

    line = make_line("no-lineage", level="full")
    ml_services.set_active_version(line=line, model_version=model_version, changed_by="test")
    run = drift.check_drift(schedule=SCHEDULE)
    assert run.skipped == {"no-lineage": "tiny has no dataset version to compare with"}
    assert not DriftReference.objects.exists() and not DriftCheck.objects.exists()


def test_a_shifted_camera_is_flagged_and_the_usual_one_is_not(
    trained_line, station_with_token, admin_client
):
    usual, _ = station_with_token(trained_line, "cam-usual")
    shifted, _ = station_with_token(trained_line, "cam-shifted")
    serve(usual, "u", camera(11, ITEMS))
    serve(shifted, "s", camera(12, ITEMS, lighting=0.6, blur=1.5))
    # shifted images on the line's batch station (a batch sent to labeling) are no camera's
    # window: they never make the line drift
    batch = services.batch_station(trained_line)
    serve(batch, "b", camera(13, ITEMS, lighting=0.6, blur=1.5))

    run = drift.check_drift(schedule=SCHEDULE)
    assert run.checks == 2
    assert run.drifting == ["drift-line/cam-shifted: data_drift"]
    ok = DriftCheck.objects.get(station=usual)
    assert ok.verdict == "ok" and not ok.data_drift and ok.items == ITEMS
    assert ok.results["skewed_items"] == 0
    bad = DriftCheck.objects.get(station=shifted)
    assert bad.verdict == "data_drift" and bad.data_drift
    shifted_tests = [name for name, t in bad.results["tests"].items() if t["shifted"]]
    assert shifted_tests, bad.results["tests"]
    for name in shifted_tests:
        assert bad.results["tests"][name]["p_adjusted"] < bad.policy["alpha"]

    # not due again until `step` new items came: the same window is not tested twice
    assert drift.check_drift(schedule=SCHEDULE).checks == 0
    assert DriftCheck.objects.count() == 2

    response = admin_client.get(f"/lines/{trained_line.pk}/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="drift-alarm"' in html and "cam-shifted" in html
    assert f"{ITEMS} images of drift-v1" in html
    start = html.index('<script id="drift-data" type="application/json">')
    data = json.loads(html[start:].split(">", 1)[1].split("</script>", 1)[0])
    verdicts = {s["station"]: s["verdict"] for s in data["stations"]}
    assert verdicts == {"cam-shifted": "data_drift", "cam-usual": "ok"}
    assert data["auc_threshold"] == engine_drift.DriftPolicy().auc_threshold
    assert len(data["history"]) == 2


def test_the_page_says_when_no_check_has_run(trained_line):
    client = Client()
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw-drift-1")
    client.force_login(admin)
    html = client.get(f"/lines/{trained_line.pk}/monitoring/").content.decode()
    assert 'id="drift-none"' in html
