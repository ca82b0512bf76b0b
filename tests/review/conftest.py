import pytest

from tests.helpers import seed_inspection


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="inspector", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password="review-test-password-1",
        )

    return make


@pytest.fixture
def queue(make_line, station_with_token):
    """A human_only line with `n` open review items, oldest first."""

    def make(n, name="line-a"):
        line = make_line(name=name, level="human_only")
        station, _ = station_with_token(line)
        items = [seed_inspection(station, f"{name}-{i}").review_item for i in range(n)]
        return line, items

    return make
