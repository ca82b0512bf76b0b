"""The data team's commands: freeze, export and import from the shell."""

import io
import zipfile

import pytest
from django.core.management import CommandError, call_command

from datasets.models import DatasetVersion
from inspection.models import Inspection
from tests.datasets.conftest import make_zip, png


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_freeze_then_export_from_the_shell(labeled, tmp_path):
    out, err = run("freeze_dataset", "--line", "line-a", "--source", "human", "--name", "cli-1")
    assert out.strip() == "cli-1"
    assert "froze cli-1: 2 images" in err
    out, err = run("freeze_dataset", "--line", "line-a", "--source", "human")
    assert out.strip() == "cli-1" and "already frozen as cli-1" in err
    target = tmp_path / "cli.zip"
    out, _ = run("export_dataset", "cli-1", "--format", "yolo", "--out", str(target))
    assert out.startswith(str(target))
    assert "data.yaml" in zipfile.ZipFile(target).namelist()


def test_freeze_errors_are_command_errors(labeled):
    with pytest.raises(CommandError, match="no line named nowhere"):
        run("freeze_dataset", "--line", "nowhere")
    with pytest.raises(CommandError, match="no dataset version named 'nope'"):
        run("export_dataset", "nope", "--format", "coco", "--out", "x.zip")
    assert DatasetVersion.objects.count() == 0


def test_import_from_the_shell_lists_every_problem(line, data_team, tmp_path):
    archive = tmp_path / "parts.zip"
    archive.write_bytes(make_zip({"ok/a.png": png(40), "ok/b.png": b"junk", "c.png": png(41)}))
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command(
            "import_dataset",
            str(archive),
            "--line",
            "line-a",
            "--format",
            "imagefolder",
            "--user",
            data_team.username,
            stderr=err,
        )
    assert "ok/b.png: the file is not a recognised image" in err.getvalue()
    assert "c.png: not inside a class folder" in err.getvalue()
    assert Inspection.objects.count() == 0
    archive.write_bytes(make_zip({"ok/a.png": png(40), "scratch/d.png": png(42)}))
    out, _ = run(
        "import_dataset",
        str(archive),
        "--line",
        "line-a",
        "--format",
        "imagefolder",
        "--user",
        data_team.username,
    )
    assert out.strip() == "2 labeled inspections created in line line-a"
