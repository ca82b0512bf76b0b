"""A candidate challenges its line's active model, and becomes it only through promotion."""

import pytest

from inspection.errors import RolloutConflict
from inspection.models import RolloutState
from inspection.rollouts import end_rollout
from ml import challengers, services
from ml.errors import NotACandidate
from ml.models import ModelStatus, ModelVersion
from tests.helpers import seed_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(line):
    old, new = seed_model_version("v-old"), seed_model_version("v-new")
    ModelVersion.objects.filter(pk__in=[old.pk, new.pk]).update(line=line)
    services.set_active_version(line=line, model_version=old, changed_by="sam")
    old.refresh_from_db()
    new.refresh_from_db()
    return old, new


def test_a_promoted_challenger_serves_the_line_and_its_rollout_ends(line, versions):
    old, new = versions
    rollout = challengers.start_challenger(
        model_version=new, mode="canary", share=0.05, changed_by="ada"
    )
    challengers.promote_challenger(rollout=rollout, changed_by="ada", reason="passed every step")
    line.refresh_from_db()
    rollout.refresh_from_db()
    old.refresh_from_db()
    assert line.active_model_id == new.pk
    assert rollout.state == RolloutState.PROMOTED and rollout.ended_at is not None
    assert old.status == ModelStatus.RETIRED


def test_a_rolled_back_challenger_cannot_be_promoted(line, versions):
    _, new = versions
    rollout = challengers.start_challenger(
        model_version=new, mode="canary", share=0.05, changed_by="ada"
    )
    end_rollout(rollout=rollout, state=RolloutState.ROLLED_BACK, changed_by="gate")
    with pytest.raises(RolloutConflict):
        challengers.promote_challenger(rollout=rollout, changed_by="ada")
    line.refresh_from_db()
    new.refresh_from_db()
    assert line.active_model_id != new.pk and new.status == ModelStatus.CANDIDATE


def test_only_a_candidate_of_the_line_challenges_it(line, versions):
    old, _ = versions
    with pytest.raises(NotACandidate):
        challengers.start_challenger(model_version=old, mode="mirror", changed_by="ada")
    orphan = seed_model_version("v-orphan")
    with pytest.raises(NotACandidate):
        challengers.start_challenger(model_version=orphan, mode="mirror", changed_by="ada")
    assert not line.rollouts.exists()


def test_the_command_walks_a_canary_through_its_steps_and_rolls_it_back(line, versions):
    from io import StringIO

    from django.core.management import CommandError, call_command

    def run(*args):
        out = StringIO()
        call_command("rollout", line.name, *args, stdout=out)
        return out.getvalue().strip()

    _, new = versions
    assert run("start", "v-new").endswith("canary challenger v-new at share 0.05")
    assert run("step").endswith("at share 0.25")
    assert run("step", "--share", "0.5").endswith("at share 0.5")
    assert run("rollback", "--reason", "two escapes").endswith("no running rollout")
    with pytest.raises(CommandError, match="no running rollout"):
        run("step")
    with pytest.raises(CommandError, match="0 or 1"):
        run("start", "v-new", "--mode", "blue_green", "--share", "0.3")
    assert line.rollouts.get().state == RolloutState.ROLLED_BACK
    assert new.pk != line.active_model_id
