"""Registering versions with their lineage, promotion, discard and rollback."""

import shutil

import pytest

from inspection import services as inspection_services
from inspection import submission
from inspection.models import LineChange
from ml import services
from ml.errors import ActiveModelChanged, NotACandidate, NothingToRollBack
from ml.models import ModelStatus, ModelVersion
from tests.helpers import image_bytes, seed_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(line):
    """v-old serving the line (activated by hand long ago), v-new a candidate for it."""
    old = seed_model_version("v-old")
    new = seed_model_version("v-new")
    ModelVersion.objects.filter(pk__in=[old.pk, new.pk]).update(line=line)
    services.set_active_version(line=line, model_version=old, changed_by="sam")
    old.refresh_from_db()
    new.refresh_from_db()
    return old, new


def audit(line):
    return list(
        LineChange.objects.filter(line=line)
        .order_by("pk")
        .values_list("field", "old_value", "new_value", "changed_by")
    )


def test_a_registered_version_records_its_code_and_environment(model_version):
    import subprocess

    from django.conf import settings

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True
    ).stdout.strip()
    assert model_version.status == ModelStatus.CANDIDATE
    # this checkout's commit ("-dirty" with uncommitted changes); empty outside a checkout
    assert model_version.code_version.removesuffix("-dirty") == head
    assert model_version.environment["python"].count(".") == 2
    assert model_version.environment["torch"].startswith("2.")
    assert model_version.environment["torchvision"]


def test_promotion_switches_the_line_and_the_statuses_at_once_and_is_audited(line, versions):
    old, new = versions
    services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    line.refresh_from_db()
    old.refresh_from_db()
    new.refresh_from_db()
    assert line.active_model == new
    assert (new.status, old.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert new.promoted_at is not None and old.retired_at is not None
    assert audit(line)[-1] == ("active_model", "v-old", "v-new", "sam")


def test_promoting_twice_changes_nothing_the_second_time(line, versions):
    old, new = versions
    services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    before = audit(line)
    services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    assert audit(line) == before


def test_promotion_against_a_model_no_longer_served_is_refused_and_changes_nothing(line, versions):
    old, new = versions
    other = seed_model_version("v-other")
    before = audit(line)
    with pytest.raises(ActiveModelChanged):
        services.promote_model_version(model_version=new, changed_by="sam", expected_active=other)
    line.refresh_from_db()
    new.refresh_from_db()
    assert line.active_model == old
    assert new.status == ModelStatus.CANDIDATE
    assert audit(line) == before


def test_a_discarded_candidate_is_retired_logged_and_cannot_be_promoted(line, versions):
    old, new = versions
    services.discard_candidate(model_version=new, changed_by="sam", reason="worse on dents")
    new.refresh_from_db()
    assert new.status == ModelStatus.RETIRED
    assert audit(line)[-1] == ("candidate", "v-new", "discarded", "sam")
    with pytest.raises(NotACandidate):
        services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    services.discard_candidate(model_version=new, changed_by="sam")  # again: nothing more
    assert len(audit(line)) == 2


def test_the_active_version_cannot_be_discarded(versions):
    old, _ = versions
    with pytest.raises(NotACandidate):
        services.discard_candidate(model_version=old, changed_by="sam")


def test_rollback_is_one_action_back_to_the_previous_version(line, versions):
    old, new = versions
    services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    back = services.rollback_line(line=line, expected_active=new, changed_by="sam")
    line.refresh_from_db()
    old.refresh_from_db()
    new.refresh_from_db()
    assert back == old
    assert line.active_model == old
    assert (old.status, new.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert audit(line)[-1] == ("active_model", "v-new", "v-old", "sam")


def test_a_second_click_on_rollback_does_not_roll_back_again(line, versions):
    old, new = versions
    services.promote_model_version(model_version=new, changed_by="sam", expected_active=old)
    services.rollback_line(line=line, expected_active=new, changed_by="sam")
    before = audit(line)
    with pytest.raises(ActiveModelChanged):
        services.rollback_line(line=line, expected_active=new, changed_by="sam")
    line.refresh_from_db()
    assert line.active_model == old
    assert audit(line) == before


def test_a_line_that_served_one_version_has_nothing_to_roll_back_to(line, versions):
    old, _ = versions
    with pytest.raises(NothingToRollBack):
        services.rollback_line(line=line, expected_active=old, changed_by="sam")


@pytest.mark.django_db(transaction=True)
def test_after_promotion_and_rollback_the_next_inspection_uses_the_new_active_model(
    model_version, trained_artifact, settings, make_line
):
    """Workers resolve the line's active model per task and keep one loaded copy per version,
    so a switch needs no restart and the next item is judged by the version now active."""
    from inspection.images import validate_image

    copy = settings.LOUPE_MODEL_DIR / "tiny-b.pt"
    shutil.copy(trained_artifact, copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")  # another hash, the same network
    line = make_line(name="press-9", level="full")
    first = model_version
    second = services.register_model_version(artifact=copy, name="tiny-b", line=line)
    ModelVersion.objects.filter(pk=first.pk).update(line=line)
    services.set_active_version(line=line, model_version=first, changed_by="sam")
    station, _ = inspection_services.create_station(line=line, name="cam")

    def judged_by(external_id, seed):
        image = validate_image(image_bytes(seed=seed), max_bytes=10**7, max_pixels=10**8)
        inspection, _ = submission.submit_inspection(
            station=station, external_id=external_id, image=image, metadata={}
        )
        return inspection.predictions.get().model_version

    assert judged_by("A", 1) == first
    services.promote_model_version(model_version=second, changed_by="sam", expected_active=first)
    assert judged_by("B", 2) == second
    services.rollback_line(line=line, expected_active=second, changed_by="sam")
    assert judged_by("C", 3) == first


def test_a_policy_change_is_audited_and_bad_values_change_nothing(line):
    from loupe.common.errors import InvalidInput

    services.set_retraining_policy(
        line=line, changed_by="sam", mlops_level="automatic", retrain_every_corrections=50
    )
    assert audit(line) == [
        ("mlops_level", "manual", "automatic", "sam"),
        ("retrain_every_corrections", "200", "50", "sam"),
    ]
    with pytest.raises(InvalidInput):
        services.set_retraining_policy(line=line, changed_by="sam", gate_margin=2.0)
    with pytest.raises(InvalidInput):
        services.set_retraining_policy(line=line, changed_by="sam", mlops_level="yolo")
    assert services.retraining_policy_for(line).gate_margin == 0.01
    assert len(audit(line)) == 2


def test_a_version_of_no_line_belongs_to_the_first_line_it_serves(db, make_line):
    from ml.models import ModelVersion
    from ml.services import set_active_version
    from tests.helpers import seed_model_version

    first, second = make_line(name="first"), make_line(name="second")
    version = seed_model_version("from-a-folder")
    set_active_version(line=first, model_version=version, changed_by="cli")
    set_active_version(line=second, model_version=version, changed_by="cli")
    assert ModelVersion.objects.get(pk=version.pk).line == first
