"""The Django side of inference: one loaded model per process, switching with the line."""

import shutil

import pytest

from inspection import inference, services, submission
from ml import services as ml_services
from ml.services import register_model_version
from tests.helpers import image_bytes


@pytest.fixture
def two_versions(model_version, trained_artifact, settings):
    """The tiny model registered twice, under two names and two (byte-different) artifacts."""
    copy = settings.LOUPE_MODEL_DIR / "tiny-copy.pt"
    shutil.copy(trained_artifact, copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")  # a different hash; torch ignores bytes after the archive
    return model_version, register_model_version(artifact=copy, name="tiny-2")


@pytest.mark.django_db
def test_a_version_is_loaded_once_per_process(model_version):
    first = inference.loaded_model(model_version)
    assert inference.loaded_model(model_version) is first


@pytest.mark.django_db
def test_predict_image_returns_a_probability_and_a_latency(model_version, tmp_path):
    path = tmp_path / "part.png"
    path.write_bytes(image_bytes())
    output, latency_ms = inference.predict_image(model_version, path)
    assert 0.0 <= output.defect_probability <= 1.0
    assert latency_ms > 0


@pytest.mark.django_db(transaction=True)
def test_the_next_inspection_uses_a_newly_activated_version(two_versions, make_line):
    from inspection.images import validate_image

    old, new = two_versions
    line = make_line(name="press", level="full")
    ml_services.set_active_version(line=line, model_version=old, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")

    def submit(external_id, seed):
        image = validate_image(image_bytes(seed=seed), max_bytes=10**7, max_pixels=10**8)
        inspection, _ = submission.submit_inspection(
            station=station, external_id=external_id, image=image, metadata={}
        )
        return inspection

    assert submit("A", 1).predictions.get().model_version == old
    ml_services.set_active_version(line=line, model_version=new, changed_by="test")
    assert submit("B", 2).predictions.get().model_version == new
    ml_services.set_active_version(line=line, model_version=old, changed_by="test")  # rollback
    assert submit("C", 3).predictions.get().model_version == old


@pytest.mark.django_db
def test_warm_up_loads_the_versions_lines_ask_and_skips_a_broken_one(
    two_versions, make_line, settings
):
    served, human_only = two_versions
    ml_services.set_active_version(
        line=make_line(name="a", level="shadow"), model_version=served, changed_by="t"
    )
    # a human-only line never asks its model: loading it would only cost memory
    ml_services.set_active_version(
        line=make_line(name="h"), model_version=human_only, changed_by="t"
    )
    # ...but a version another line asks is loaded, whatever a human-only line does with it
    ml_services.set_active_version(line=make_line(name="h2"), model_version=served, changed_by="t")
    path = settings.LOUPE_MODEL_DIR / "broken.pt"
    path.write_bytes((settings.LOUPE_MODEL_DIR / "tiny-copy.pt").read_bytes() + b"\0\0")
    broken = register_model_version(artifact=path, name="tiny-broken")
    ml_services.set_active_version(
        line=make_line(name="b", level="full"), model_version=broken, changed_by="t"
    )
    path.write_bytes(b"tampered")
    inference.forget_loaded_models()

    assert inference.warm_up_active_models() == ["tiny"]
    assert set(inference._cache) == {served.pk}


@pytest.mark.django_db
def test_warm_up_loads_a_running_challenger_beside_the_active_model(two_versions, make_line):
    from inspection.rollouts import start_rollout

    active, challenger = two_versions
    line = make_line(name="press", level="full")
    ml_services.set_active_version(line=line, model_version=active, changed_by="test")
    start_rollout(line=line, challenger=challenger, mode="mirror", changed_by="test")
    inference.forget_loaded_models()

    assert sorted(inference.warm_up_active_models()) == ["tiny", "tiny-2"]
    assert set(inference._cache) == {active.pk, challenger.pk}
