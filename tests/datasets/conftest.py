"""Fixtures of the dataset tests: two lines with labeled inspections, and users by role."""

import io
import zipfile

import pytest

from tests.helpers import image_bytes, seed_inspection

PASSWORD = "datasets-test-password-1"
SCRATCH = {"x0": 10.0, "y0": 12.5, "x1": 40.25, "y1": 30.0, "label": "scratch"}
DENT = {"x0": 0.1, "y0": 0.3, "x1": 100.37, "y1": 127.99, "label": "dent"}


@pytest.fixture
def line(make_line):
    return make_line(name="line-a")


@pytest.fixture
def other_line(make_line):
    return make_line(name="line-b")


@pytest.fixture
def station(line, station_with_token):
    return station_with_token(line)[0]


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="data_team", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password=PASSWORD,
        )

    return make


@pytest.fixture
def data_team(make_user, line):
    return make_user("dana", "data_team", [line])


@pytest.fixture
def label(data_team):
    """label(inspection, image_label, boxes, source="human") -> its next revision."""
    from labeling.models import AnnotationRevision

    def make(inspection, image_label="ok", boxes=(), source="human", author=None):
        number = AnnotationRevision.objects.filter(inspection=inspection).count() + 1
        return AnnotationRevision.objects.create(
            inspection=inspection,
            number=number,
            author=author or data_team,
            image_label=image_label,
            boxes=list(boxes),
            source=source,
        )

    return make


@pytest.fixture
def labeled(station, label):
    """line-a: a scratch, a dent with a scratch, two defect-free items, one unlabeled."""
    items = {
        "scratch": seed_inspection(station, "SN-1"),
        "two": seed_inspection(station, "SN-2"),
        "ok1": seed_inspection(station, "SN-3"),
        "ok2": seed_inspection(station, "SN-4"),
    }
    label(items["scratch"], "defective", [SCRATCH])
    label(items["two"], "defective", [DENT, SCRATCH], source="correction")
    label(items["ok1"], "ok")
    label(items["ok2"], "ok", source="model_accepted")
    seed_inspection(station, "SN-unlabeled")
    return items


def make_zip(entries: dict, *, symlinks=()) -> bytes:
    """A zip in memory: {name: bytes}; names in `symlinks` become symbolic links."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = 0o120777 << 16
            else:
                info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def png(seed=0, size=(64, 48)) -> bytes:
    return image_bytes(seed=seed, size=size)
