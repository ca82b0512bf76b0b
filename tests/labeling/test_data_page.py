"""The data team's page: labeled item counts per line, class and source, and the filtered list."""

import pytest
from django.urls import reverse

from inspection.models import Line
from labeling import services, views
from tests.labeling.conftest import MODEL_BOX

DENT = {"x0": 70, "y0": 70, "x1": 90, "y1": 100, "label": "dent"}


@pytest.fixture
def labeled(inspect, inspector, make_line, station_with_token, make_user):
    """line-a: a model-accepted scratch, a correction to dent (relabeled from scratch), a human
    label with scratch and dent, a model-accepted OK; line-b (not the inspector's): one item."""

    def save(inspection, image_label, boxes, author=inspector):
        services.save_annotation(
            inspection=inspection, author=author, image_label=image_label, boxes=boxes
        )

    accepted = inspect("SN-acc", probability=0.9, regions=[MODEL_BOX])
    save(accepted, "defective", [MODEL_BOX])
    corrected = inspect("SN-cor", probability=0.9, regions=[MODEL_BOX])
    save(corrected, "defective", [MODEL_BOX])  # first revision: superseded below
    save(corrected, "defective", [DENT])
    save(inspect("SN-hum"), "defective", [MODEL_BOX, DENT])
    save(inspect("SN-ok", probability=0.1), "ok", [])
    inspect("SN-unlabeled", probability=0.9, regions=[MODEL_BOX])

    other = make_line(name="line-b", level="human_only")
    outsider = make_user("bob", "inspector", [other])
    save(inspect("SN-B", on_station=station_with_token(other)[0]), "ok", [], author=outsider)


@pytest.fixture
def data_team(make_user, line):
    return make_user("dana", "data_team", [line])


def get(client, user, **params):
    client.force_login(user)
    return client.get(reverse("labeling:data"), params)


def as_table(counts):
    return {
        (entry.line.name, row.label): (row.human, row.correction, row.model_accepted, row.total)
        for entry in counts
        for row in entry.classes
    }


def test_counts_follow_each_items_latest_revision(labeled, data_team):
    counts = services.label_counts(lines=Line.objects.filter(name="line-a"))
    assert as_table(counts) == {
        ("line-a", "scratch"): (1, 0, 1, 2),
        ("line-a", "dent"): (1, 1, 0, 2),
        ("line-a", "spot"): (0, 0, 0, 0),
        ("line-a", "crack"): (0, 0, 0, 0),
        ("line-a", None): (0, 0, 1, 1),
    }
    items = counts[0].items
    assert (items.human, items.correction, items.model_accepted, items.total) == (1, 1, 2, 4)


def test_the_page_counts_and_lists_only_the_users_lines(client, labeled, data_team):
    response = get(client, data_team)
    assert response.status_code == 200
    assert [entry.line.name for entry in response.context["counts"]] == ["line-a"]
    listed = [rev.inspection.external_id for rev in response.context["page"]]
    assert listed == ["SN-ok", "SN-hum", "SN-cor", "SN-acc"]
    assert b"SN-B" not in response.content
    assert reverse(
        "inspection:thumb", args=[response.context["page"][0].inspection_id]
    ).encode() in (response.content)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "correction"}, ["SN-cor"]),
        ({"source": "model_accepted"}, ["SN-ok", "SN-acc"]),
        ({"label_class": "dent"}, ["SN-hum", "SN-cor"]),
        ({"label_class": "scratch", "source": "human"}, ["SN-hum"]),
        ({"image_label": "ok"}, ["SN-ok"]),
        ({"label_class": "crack"}, []),
    ],
)
def test_filters_narrow_the_list(client, labeled, data_team, params, expected):
    response = get(client, data_team, **params)
    assert [rev.inspection.external_id for rev in response.context["page"]] == expected


def test_line_filter_and_another_lines_id_is_refused(client, labeled, make_user):
    admin = make_user("ada", "admin")
    line_b = Line.objects.get(name="line-b")
    response = get(client, admin, line=line_b.pk)
    assert [rev.inspection.external_id for rev in response.context["page"]] == ["SN-B"]

    inspector_of_a = make_user("ivan", "inspector", [Line.objects.get(name="line-a")])
    refused = get(client, inspector_of_a, line=line_b.pk)
    assert refused.context["filters"].errors["line"]
    assert b"SN-B" not in refused.content


def test_the_list_is_paginated(client, labeled, data_team, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    first = get(client, data_team)
    second = get(client, data_team, page=2)
    assert [len(first.context["page"]), len(second.context["page"])] == [3, 1]
    assert b"Page 1 of 2" in first.content


def test_a_class_name_is_shown_as_text(client, make_line, make_user):
    evil = "<script>alert(1)</script>"
    line = make_line(name="line-x", defect_classes=["scratch", evil])
    user = make_user("xavier", "data_team", [line])
    response = get(client, user)
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content
    assert evil.encode() not in response.content
