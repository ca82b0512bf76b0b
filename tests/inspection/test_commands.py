"""The operators' command line, as the README uses it."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inspection.models import Line, LineChange, Station
from inspection.services import hash_token, station_for_token
from ml.models import ModelVersion


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_create_line_with_level_and_thresholds():
    run(
        "create_line",
        "press-4",
        "--level",
        "partial",
        "--accept-threshold",
        "0.1",
        "--reject-threshold",
        "0.9",
    )
    line = Line.objects.get(name="press-4")
    assert (line.automation_level, line.accept_threshold, line.reject_threshold) == (
        "partial",
        0.1,
        0.9,
    )


@pytest.mark.django_db
def test_create_line_refuses_crossed_thresholds_and_creates_nothing():
    with pytest.raises(CommandError, match="thresholds must satisfy"):
        run("create_line", "bad", "--accept-threshold", "0.9", "--reject-threshold", "0.1")
    assert not Line.objects.exists()


@pytest.mark.django_db
def test_create_station_prints_a_token_that_is_stored_only_as_a_hash(make_line):
    make_line(name="press-4")
    token = run("create_station", "press-4", "cam-7").strip()
    station = Station.objects.get(name="cam-7")
    assert station.token_hash == hash_token(token) != token
    assert station_for_token(token) == station
    assert station_for_token(token + "x") is None


@pytest.mark.django_db
def test_create_station_on_unknown_line_names_the_known_lines(make_line):
    make_line(name="press-4")
    with pytest.raises(CommandError, match="no line named 'nope' \\(lines: press-4\\)"):
        run("create_station", "nope", "cam-1")


@pytest.mark.django_db
def test_set_level_changes_the_level_and_logs_who_and_from_what(make_line):
    make_line(name="press-4", level="shadow")
    assert run("set_level", "press-4", "assist", "--reason", "agreement 98%").strip() == (
        "line press-4: shadow -> assist"
    )
    change = LineChange.objects.get()
    assert (change.field, change.old_value, change.new_value, change.changed_by, change.reason) == (
        "automation_level",
        "shadow",
        "assist",
        "cli",
        "agreement 98%",
    )
    assert Line.objects.get().automation_level == "assist"


@pytest.mark.django_db
def test_generate_train_activate_and_roll_back(make_line, tmp_path, settings):
    make_line(name="press-4", level="partial")
    run(
        "generate_images",
        str(tmp_path / "data"),
        "--count",
        "40",
        "--seed",
        "5",
        "--defect-rate",
        "0.5",
        "--blur",
        "0.5",
    )
    coco = json.loads((tmp_path / "data" / "annotations.json").read_text())
    assert len(coco["images"]) == 40
    assert len(list((tmp_path / "data" / "images").glob("*.png"))) == 40

    first_id = int(
        run(
            "train_model",
            str(tmp_path / "data"),
            "--line",
            "press-4",
            "--activate",
            "--epochs",
            "1",
        ).strip()
    )
    second_id = int(
        run(
            "train_model",
            str(tmp_path / "data"),
            "--line",
            "press-4",
            "--epochs",
            "1",
            "--seed",
            "1",
        ).strip()
    )
    first, second = ModelVersion.objects.get(pk=first_id), ModelVersion.objects.get(pk=second_id)
    assert (settings.LOUPE_MODEL_DIR / first.artifact_path).exists()
    assert {"auroc", "box_hit_rate"} <= set(first.metrics)
    assert Line.objects.get().active_model == first

    run("activate_model", "press-4", second.name)
    assert Line.objects.get().active_model == second
    run("activate_model", "press-4", str(first.pk))  # rollback, by id
    assert Line.objects.get().active_model == first
    assert list(LineChange.objects.order_by("changed_at").values_list("new_value", flat=True)) == [
        first.name,
        second.name,
        first.name,
    ]


@pytest.mark.django_db
def test_activate_unknown_version_is_refused(make_line):
    make_line(name="press-4")
    with pytest.raises(CommandError, match="no model version 'v9'"):
        run("activate_model", "press-4", "v9")


def test_generate_images_draws_an_opt_in_class_only_when_named(tmp_path):
    run(
        "generate_images",
        str(tmp_path),
        "--count",
        "6",
        "--defect-rate",
        "1",
        "--defect-mix",
        "discoloration=1",
    )
    coco = json.loads((tmp_path / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert {names[a["category_id"]] for a in coco["annotations"]} == {"discoloration"}
    with pytest.raises(CommandError, match="unknown defect class 'rust'.*discoloration"):
        run("generate_images", str(tmp_path / "b"), "--defect-mix", "rust=1")


@pytest.mark.django_db
def test_rotate_station_token_prints_a_new_token_and_the_old_one_stops_working():
    run("create_line", "press-4")
    old = run("create_station", "press-4", "cam-1").strip()
    new = run("rotate_station_token", "press-4", "cam-1", "--reason", "leaked").strip()
    station = Station.objects.get(name="cam-1")
    assert new != old and station.token_hash == hash_token(new)
    assert station_for_token(old) is None
    change = LineChange.objects.filter(field="station cam-1 token").get()
    assert (change.old_value, change.new_value, change.reason) == (old[:10], new[:10], "leaked")
    with pytest.raises(CommandError, match="no station named 'cam-9'"):
        run("rotate_station_token", "press-4", "cam-9")
