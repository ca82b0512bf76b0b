"""The dataset pages and the API for scripts: roles, lines, and the export and import flows
through HTTP (tasks run in-process here; tests/integration has the real worker)."""

import base64
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.tokens import issue_api_token
from datasets.models import DatasetExport, DatasetVersion
from datasets.services import freeze_dataset
from inspection.models import Inspection
from tests.datasets.conftest import PASSWORD, make_zip, png
from tests.helpers import seed_inspection


@pytest.fixture
def version(labeled):
    return freeze_dataset(filters={}, name="v1")[0]


def bearer(user) -> dict:
    _, raw = issue_api_token(user=user, name="test script")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("role", "status"),
    [("inspector", 403), ("data_team", 200), ("supervisor", 200), ("admin", 200)],
)
def test_dataset_pages_and_api_follow_the_role(client, make_user, line, role, status):
    user = make_user("someone", role, [line])
    for name in ("datasets:list", "datasets:import"):
        assert login(client, user).get(reverse(name)).status_code == status
    client.logout()
    assert client.get("/api/v1/datasets/", **bearer(user)).status_code == status


def test_freezing_on_the_page_leads_to_the_version(client, data_team, labeled):
    login(client, data_team)
    form = {"name": "spring", "lines": ["line-a"], "sources": ["human", "correction"]}
    response = client.post(reverse("datasets:freeze"), form)
    version = DatasetVersion.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("datasets:detail", args=[version.pk])
    assert version.filters == {"lines": ["line-a"], "sources": ["correction", "human"]}
    page = client.get(response.url)
    assert page.status_code == 200
    assert version.version_hash in page.content.decode()
    again = client.post(reverse("datasets:freeze"), form, follow=True)
    assert "already frozen as spring" in again.content.decode()
    assert DatasetVersion.objects.count() == 1


def test_a_freeze_that_selects_nothing_shows_why(client, data_team, labeled):
    login(client, data_team)
    response = client.post(reverse("datasets:freeze"), {"date_to": "2000-01-01"})
    assert response.status_code == 400
    assert "the filters select no labeled inspection" in response.content.decode()
    assert DatasetVersion.objects.count() == 0


def test_another_lines_version_is_not_found_anywhere(
    client, make_user, other_line, version, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export = DatasetExport.objects.create(version=version, format="csv", state="done")
    outsider = make_user("olga", "data_team", [other_line])
    login(client, outsider)
    assert client.get(reverse("datasets:list")).content.decode().count("v1") == 0
    for url in (
        reverse("datasets:detail", args=[version.pk]),
        reverse("datasets:manifest", args=[version.pk]),
        reverse("datasets:export-status", args=[export.pk]),
        reverse("datasets:export-download", args=[export.pk]),
    ):
        assert client.get(url).status_code == 404, url
    start = client.post(
        reverse("datasets:export", args=[version.pk]), {"format": "csv"}, "application/json"
    )
    assert start.status_code == 404
    client.logout()
    for url in (
        f"/api/v1/datasets/{version.pk}/",
        f"/api/v1/datasets/{version.pk}/manifest.csv",
        f"/api/v1/datasets/exports/{export.pk}/",
        f"/api/v1/datasets/exports/{export.pk}/download/",
    ):
        assert client.get(url, **bearer(outsider)).status_code == 404, url
    assert client.get("/api/v1/datasets/", **bearer(outsider)).json() == {"versions": []}


def test_a_version_that_spans_a_line_you_do_not_work_is_hidden(
    client, data_team, labeled, other_line, station_with_token, label
):
    label(seed_inspection(station_with_token(other_line)[0], "SN-B"), "ok")
    version, _ = freeze_dataset(filters={})  # the command line: every line
    login(client, data_team)
    assert client.get(reverse("datasets:detail", args=[version.pk])).status_code == 404


def test_export_from_the_page_shows_progress_then_downloads(
    client, data_team, version, django_capture_on_commit_callbacks
):
    login(client, data_team)
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            reverse("datasets:export", args=[version.pk]), {"format": "yolo"}, "application/json"
        )
    assert started.status_code == 202
    assert started.json()["state"] == "queued"
    status = client.get(started.json()["status_url"]).json()
    assert (status["state"], status["done"], status["total"]) == ("done", 4, 4)
    download = client.get(status["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="v1-yolo.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "data.yaml" in archive.namelist()
    page = client.get(reverse("datasets:detail", args=[version.pk])).content.decode()
    assert status["download_url"] in page


def test_an_unknown_export_format_is_answered_in_words(client, data_team, version):
    login(client, data_team)
    response = client.post(
        reverse("datasets:export", args=[version.pk]), {"format": "voc"}, "application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("format must be one of")
    assert DatasetExport.objects.count() == 0


def test_the_manifest_page_streams_csv(client, data_team, version):
    login(client, data_team)
    response = client.get(reverse("datasets:manifest", args=[version.pk]))
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("file,split,image_label,boxes")
    assert len(lines) == 5


def basic(user, password=PASSWORD) -> dict:
    token = base64.b64encode(f"{user.username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def test_scripts_sign_in_with_an_api_token_and_station_tokens_are_refused(
    client, data_team, version, station_with_token, line
):
    assert client.get("/api/v1/datasets/", **bearer(data_team)).status_code == 200
    wrong = client.get("/api/v1/datasets/", HTTP_AUTHORIZATION="Bearer lpu_not-a-token")
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "the API token is not valid")
    # HTTP Basic is gone, even with the right password: no browser prompt, no CSRF bypass
    refused = client.get("/api/v1/datasets/", **basic(data_team))
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="loupe-api"'
    _, token = station_with_token(line, "cam-9")
    as_station = client.get("/api/v1/datasets/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert as_station.status_code == 401
    nobody = client.get("/api/v1/datasets/")
    assert nobody.status_code == 401  # a JSON answer, not a redirect to the login page
    assert nobody.json()["error"] == "not_authenticated"


def test_a_script_freezes_exports_and_downloads(
    client, data_team, labeled, django_capture_on_commit_callbacks
):
    auth = bearer(data_team)
    body = {"name": "api-1", "filters": {"lines": ["line-a"], "sources": ["human"]}}
    created = client.post("/api/v1/datasets/", body, "application/json", **auth)
    assert created.status_code == 201
    assert created.json()["item_count"] == 2
    again = client.post("/api/v1/datasets/", body, "application/json", **auth)
    assert (again.status_code, again.json()["id"]) == (200, created.json()["id"])
    bad = client.post(
        "/api/v1/datasets/", {"filters": {"lines": ["line-b"]}}, "application/json", **auth
    )
    assert (bad.status_code, bad.json()["detail"]) == (400, "no line named line-b")
    url = f"/api/v1/datasets/{created.json()['id']}/exports/"
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(url, {"format": "coco"}, "application/json", **auth)
    assert started.status_code == 202
    status = client.get(started.json()["status_url"], **auth).json()
    assert status["state"] == "done"
    assert status["download_url"].startswith("/api/v1/datasets/exports/")
    download = client.get(status["download_url"], **auth)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "annotations.json" in archive.namelist()


def test_a_script_imports_an_archive_into_one_of_its_lines(
    client, data_team, line, other_line, django_capture_on_commit_callbacks
):
    auth = bearer(data_team)

    def post(line_name):
        archive = SimpleUploadedFile("parts.zip", make_zip({"ok/a.png": png(30)}))
        data = {"archive": archive, "line": line_name, "format": "imagefolder"}
        return client.post("/api/v1/datasets/imports/", data, **auth)

    assert post("line-b").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        started = post("line-a")
    assert started.status_code == 202
    status = client.get(started.json()["status_url"], **auth).json()
    assert (status["state"], status["created_count"], status["problems"]) == ("done", 1, [])
    assert Inspection.objects.filter(line=line).count() == 1


def test_the_import_page_uploads_and_lists_the_problems(
    client, data_team, line, django_capture_on_commit_callbacks
):
    login(client, data_team)
    archive = SimpleUploadedFile("bad.zip", make_zip({"ok/a.png": b"nope", "b.png": png(31)}))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("datasets:import"),
            {"line": line.pk, "format": "imagefolder", "archive": archive},
        )
    assert response.status_code == 302
    page = client.get(response.url).content.decode()
    assert "ok/a.png" in page and "the file is not a recognised image" in page
    assert "b.png" in page and "not inside a class folder" in page
    assert Inspection.objects.count() == 0


def test_the_import_page_refuses_an_oversized_upload_from_its_length(
    client, data_team, line, settings
):
    settings.LOUPE_IMPORT_MAX_BYTES = 10
    login(client, data_team)
    archive = SimpleUploadedFile("big.zip", b"x" * (2 * 1024 * 1024))
    response = client.post(
        reverse("datasets:import"), {"line": line.pk, "format": "coco", "archive": archive}
    )
    assert response.status_code == 413
    assert "the archive is over 10 bytes" in response.content.decode()
