"""Accounts, roles and line scoping: who may see and do what, in pages and APIs."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import Client

from inspection.models import Decision, ReviewItem
from tests.helpers import image_bytes, seed_inspection


@pytest.fixture
def two_lines(make_line, station_with_token):
    line_a, line_b = make_line(name="line-a"), make_line(name="line-b")
    station_a, token_a = station_with_token(line_a)
    station_b, _ = station_with_token(line_b)
    return {
        "a": (line_a, seed_inspection(station_a, "A-1"), token_a),
        "b": (line_b, seed_inspection(station_b, "B-1"), None),
    }


def create(username, role, *lines, password="a-long-password-42"):
    out = io.StringIO()
    args = [username, "--role", role, "--password-from-stdin"]
    for line in lines:
        args += ["--line", line]
    stdin = io.StringIO(password + "\n")
    import sys

    real, sys.stdin = sys.stdin, stdin
    try:
        call_command("create_user", *args, stdout=out)
    finally:
        sys.stdin = real
    return get_user_model().objects.get(username=username), out.getvalue()


def test_create_user_assigns_role_and_lines(two_lines):
    user, out = create("ana", "inspector", "line-a")
    assert "created inspector ana on line-a" in out
    assert list(user.groups.values_list("name", flat=True)) == ["inspector"]
    assert list(user.lines.values_list("name", flat=True)) == ["line-a"]
    assert user.check_password("a-long-password-42")
    assert user.has_perm("inspection.change_reviewitem")
    assert not user.has_perm("inspection.change_line")


@pytest.mark.parametrize(
    "args, message",
    [
        (("ana", "inspector", "nowhere"), "no line named nowhere"),
        (("ana", "inspector"), "at least one --line"),
        (("ana", "inspector", "line-a"), "short"),  # password too short
    ],
)
def test_create_user_refuses_bad_input(two_lines, args, message):
    password = "short" if message == "short" else "a-long-password-42"
    with pytest.raises(CommandError, match=message):
        create(*args, password=password)
    assert not get_user_model().objects.filter(username="ana").exists()


@pytest.mark.parametrize(
    "role, may_review, may_control",
    [
        ("inspector", True, False),
        ("supervisor", True, True),
        ("data_team", False, False),
        ("admin", True, True),
    ],
)
def test_each_role_has_its_permissions(two_lines, role, may_review, may_control):
    user, _ = create("u", role, "line-a")
    assert user.has_perm("inspection.change_reviewitem") is may_review
    assert user.has_perm("inspection.change_line") is may_control
    assert user.has_perm("labeling.view_annotationrevision")


@pytest.mark.parametrize("url", ["/", "/review/", "/lines/", "/data/", "/inspections/1/"])
def test_every_page_needs_a_login(db, url):
    answer = Client().get(url)
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")


def test_login_page_is_open(db):
    assert Client().get("/login/").status_code == 200


@pytest.mark.parametrize("suffix", ["", "image", "thumb"])
def test_another_lines_inspection_is_a_404(two_lines, suffix):
    _, inspection_a, _ = two_lines["a"]
    _, inspection_b, _ = two_lines["b"]
    user, _ = create("ana", "inspector", "line-a")
    client = Client()
    client.force_login(user)
    assert client.get(f"/inspections/{inspection_a.pk}/{suffix}").status_code == 200
    assert client.get(f"/inspections/{inspection_b.pk}/{suffix}").status_code == 404


def test_admin_sees_every_line(two_lines):
    user, _ = create("root", "admin")
    client = Client()
    client.force_login(user)
    _, inspection_b, _ = two_lines["b"]
    assert client.get(f"/inspections/{inspection_b.pk}/").status_code == 200


def test_a_station_token_cannot_use_the_browser_ui(two_lines):
    _, inspection_a, token = two_lines["a"]
    client = Client(headers={"Authorization": f"Bearer {token}"})
    for url in ["/review/", f"/inspections/{inspection_a.pk}/", "/data/"]:
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"].startswith("/login/")
    # while the same token works on the station API
    assert client.get(f"/api/v1/inspections/{inspection_a.pk}/").status_code == 200


def test_a_browser_session_cannot_act_as_a_station(two_lines):
    _, inspection_a, _ = two_lines["a"]
    user, _ = create("root", "admin")
    client = Client()
    client.force_login(user)
    answer = client.post(
        "/api/v1/inspections/",
        {"image": io.BytesIO(image_bytes()), "external_id": "X-1"},
    )
    assert answer.status_code == 401
    assert client.get(f"/api/v1/inspections/{inspection_a.pk}/").status_code == 401


def test_user_typed_text_is_escaped_on_the_detail_page(make_line, station_with_token):
    line = make_line(name="<b>line</b>")
    station, _ = station_with_token(line)
    inspection = seed_inspection(station, "<script>alert(1)</script>")
    user, _ = create("root", "admin")
    client = Client()
    client.force_login(user)
    page = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;line&lt;/b&gt;" in page


def test_admin_manages_users_and_their_lines(two_lines):
    user, _ = create("root", "admin")
    create("ana", "inspector", "line-a")
    client = Client()
    client.force_login(user)
    users = client.get("/admin/auth/user/")
    assert users.status_code == 200 and b"ana" in users.content
    ana = get_user_model().objects.get(username="ana")
    page = client.get(f"/admin/auth/user/{ana.pk}/change/")
    assert page.status_code == 200 and b"lines this user works" in page.content.lower()


def test_detail_page_hides_the_model_from_an_open_shadow_item(make_line, station_with_token):
    from review.services import decide_review_item
    from tests.helpers import seed_model_version

    line = make_line(name="shadow-line", level="shadow")
    station, _ = station_with_token(line)
    region = {"x0": 1, "y0": 2, "x1": 30, "y1": 40, "label": "dent", "score": 0.93}
    inspection = seed_inspection(
        station, "S-1", probability=0.9, regions=[region], model_version=seed_model_version()
    )
    user, _ = create("ana", "inspector", "shadow-line")
    client = Client()
    client.force_login(user)
    page = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert "dent 0.93" not in page and "Hidden until a human has decided" in page
    decide_review_item(item=inspection.review_item, inspector=user, outcome="reject")
    page = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert "dent 0.93" not in page, "shown while the decision can still be undone"
    # once the undo window has passed, the decision is final and the model's answer shown
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    ReviewItem.objects.filter(pk=inspection.review_item.pk).update(
        decided_at=F("decided_at") - passed
    )
    Decision.objects.filter(inspection=inspection).update(
        decided_at=F("decided_at") - passed, final_at=F("final_at") - passed
    )
    page = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert "dent 0.93" in page and "0.9000" in page


def test_open_audit_item_hides_the_models_decision_everywhere(make_line, station_with_token):
    from tests.helpers import seed_model_version

    line = make_line(name="full-line", level="full", audit_fraction=1.0)
    station, _ = station_with_token(line)
    inspection = seed_inspection(
        station, "F-1", probability=0.95, regions=[], model_version=seed_model_version()
    )
    assert inspection.review_item.reason == "audit"
    user, _ = create("ana", "inspector", "full-line")
    client = Client()
    client.force_login(user)
    page = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert 'class="badge reject"' not in page and "0.9500" not in page
    client.post(
        f"/inspections/{inspection.pk}/annotations/",
        '{"image_label": "ok", "boxes": []}',
        content_type="application/json",
    )
    saved = client.get(f"/inspections/{inspection.pk}/annotations/").json()["revisions"][0]
    assert saved["source"] is None and saved["compared_with"] is None
    history = client.get(f"/inspections/{inspection.pk}/history/").content.decode()
    assert "Correction" not in history and "hidden until a human has decided" in history
