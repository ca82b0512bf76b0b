"""A data-team member freezes nothing by hand here: the version exists; they export it from
the page, watch it finish and download the zip. Also screenshots of the data-loop pages."""

import json
import zipfile

from datasets.services import freeze_dataset
from labeling.models import AnnotationRevision
from tests.helpers import seed_inspection

SCRATCH = {"x0": 10.0, "y0": 12.5, "x1": 40.0, "y1": 30.0, "label": "scratch"}


def test_export_from_the_page_ends_in_a_download(
    make_line, station_with_token, make_user, login, screenshot, tmp_path
):
    line = make_line(name="line-a")
    station, _ = station_with_token(line)
    dana = make_user("dana", "data_team", [line])
    for i in range(4):
        inspection = seed_inspection(station, f"SN-{i}")
        AnnotationRevision.objects.create(
            inspection=inspection,
            number=1,
            author=dana,
            image_label="defective" if i % 2 else "ok",
            boxes=[SCRATCH] if i % 2 else [],
            source="human",
        )
    version, _ = freeze_dataset(filters={"lines": ["line-a"]}, user=dana)

    page = login(dana)
    page.goto("/datasets/")
    screenshot(page, "datasets-list")
    page.goto(f"/datasets/{version.pk}/")
    page.select_option("#export select[name=format]", "coco")
    page.click("#export button[type=submit]")
    link = page.locator("#exports a", has_text="Download")
    link.wait_for()
    screenshot(page, "dataset-exported")
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "export.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        coco = json.loads(archive.read("annotations.json"))
    assert len(coco["images"]) == 4
    assert [a["bbox"] for a in coco["annotations"]] == [[10.0, 12.5, 30.0, 17.5]] * 2


def test_model_registry_page_shows_a_lines_versions(make_line, make_user, login, screenshot):
    from tests.helpers import seed_model_version

    line = make_line(name="line-a")
    seed_model_version("v-browser")
    page = login(make_user("sam", "supervisor", [line]))
    answer = page.goto("/models/")
    assert answer.status == 200
    screenshot(page, "model-registry")
