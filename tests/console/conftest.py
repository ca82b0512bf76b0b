import pytest

from ml import services as ml_services
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version

# (p(defect), the human's decision): a known set the evidence figures are checked against.
# With the line's reject threshold 0.8 the model (full rule) agrees on 5 of the 8.
KNOWN_SET = [
    (0.05, "accept"),
    (0.10, "accept"),
    (0.15, "reject"),
    (0.50, "accept"),
    (0.60, "reject"),
    (0.85, "reject"),
    (0.90, "accept"),
    (0.95, "reject"),
]


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="supervisor", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password="console-test-password-1",
        )

    return make


@pytest.fixture
def shadow_line(make_line, station_with_token, make_user):
    """A shadow line whose active model judged the KNOWN_SET, each item decided by a human."""
    line = make_line(name="press-4", level="shadow")
    station, _ = station_with_token(line)
    version = seed_model_version("v1")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    inspector = make_user("ivy", role="inspector", lines=[line])
    for i, (p, human) in enumerate(KNOWN_SET):
        item = seed_inspection(station, f"k-{i}", probability=p, model_version=version).review_item
        decide_review_item(item=item, inspector=inspector, outcome=human)
    line.refresh_from_db()
    return line


@pytest.fixture
def lenient(db):
    """Loosen a line's gate so the 8 items of the KNOWN_SET pass it at the reject thresholds
    the tests propose, 0.8 and 0.9 (agreement down to 4 of 8, lower bound 24.9%; up to 3 of 4
    defective items missed, upper bound 94.2%): the rules' edges are tested on their own in
    tests/inspection/test_evidence.py.
    """
    from inspection.models import Line

    def loosen(line):
        Line.objects.filter(pk=line.pk).update(agreement_target=0.2, escape_rate_limit=0.95)
        line.refresh_from_db()
        return line

    return loosen
