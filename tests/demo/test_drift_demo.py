"""`manage.py demo_drift`'s refusals and its scenario's pure parts. The whole run, held to the
issue's targets, is tests/drift_demo (make drift-check): it trains a model and posts thousands
of items, too long for `make test`."""

import io

import pytest
from django.core.management import CommandError, call_command

from demo.drift_scenario import DriftSettings

pytestmark = pytest.mark.django_db


def test_the_command_refuses_an_existing_line():
    from inspection import services

    services.create_line(name="taken")
    with pytest.raises(CommandError, match="exists"):
        call_command("demo_drift", "--line", "taken", stdout=io.StringIO())


@pytest.mark.parametrize("share", ["0", "0.5", "0.7", "-0.1"])
def test_the_command_refuses_a_new_type_share_out_of_range(share):
    with pytest.raises(CommandError, match="share"):
        call_command("demo_drift", "--new-type-share", share, stdout=io.StringIO())


@pytest.mark.parametrize("share", [0.02, 0.05, 0.2])
def test_the_new_type_weight_puts_the_stated_share_of_items_on_the_new_type(share):
    # half the items are defective, each of the four old types weighs 1
    weight = DriftSettings(new_type_share=share).new_type_weight()
    assert 0.5 * weight / (4.0 + weight) == pytest.approx(share)
