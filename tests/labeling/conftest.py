"""Fixtures of the labeling tests: a line whose model said "scratch at (10,10)-(40,30)"."""

import pytest

from tests.helpers import seed_inspection, seed_model_version

PASSWORD = "labeling-test-password-1"
MODEL_BOX = {"x0": 10.0, "y0": 10.0, "x1": 40.0, "y1": 30.0, "label": "scratch"}


@pytest.fixture
def model(db):
    return seed_model_version("v-label")


@pytest.fixture
def line(make_line):
    # assist: the model runs and the inspector sees its regions
    return make_line(name="line-a", level="assist", audit_fraction=0.0)  # never blind


@pytest.fixture
def station(line, station_with_token):
    return station_with_token(line)[0]


@pytest.fixture
def inspect(station, model):
    """inspect("SN-1", probability=0.9, regions=[...]) -> an inspection with that model output;
    without probability the model was not asked."""

    def make(external_id, probability=None, regions=(), on_station=None):
        return seed_inspection(
            on_station or station,
            external_id,
            probability=probability,
            regions=[{**r, "score": 0.9} for r in regions],
            model_version=model if probability is not None else None,
        )

    return make


@pytest.fixture
def defective(inspect):
    """The model judged it defective, with one scratch box."""
    return inspect("SN-1", probability=0.93, regions=[MODEL_BOX])


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="inspector", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password=PASSWORD,
        )

    return make


@pytest.fixture
def inspector(make_user, line):
    return make_user("ines", "inspector", [line])
