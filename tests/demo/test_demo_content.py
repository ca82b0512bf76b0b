"""The demo's content, as `make demo` builds it, on a few small images: the data team's import
and dataset version, the first model trained from that version by the pipeline, the simulated
station's trickle, and scripts/demo_check.py's checks of every role's pages against a live
server. (`make demo-check` runs the same with 2,000 images and a full training.)"""

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from datasets.models import DatasetImport, DatasetVersion, ExportImportState
from demo import first_model, station_sim
from demo.management.commands.setup_demo import DEMO_DATASET, DEMO_LINE, SHADOW_LINE
from inspection import services
from inspection.models import Inspection, Line
from ml.models import ModelStatus, PipelineRun
from tests.ml_registry.conftest import TINY_RUN

ROOT = Path(__file__).resolve().parents[2]
transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory):
    """A generate_images folder for the line (60 images) and one for the shadow line (4)."""
    from ml.engine.generator import SurfaceConfig, generate_dataset

    root = tmp_path_factory.mktemp("demo-images")
    generate_dataset(root / "data", count=60, seed=5, config=SurfaceConfig(size=64))
    generate_dataset(root / "holdout", count=4, seed=999, config=SurfaceConfig(size=64))
    return root


@pytest.fixture
def demo(demo_images, tmp_path, monkeypatch):
    """setup_demo run once, with the pipeline's tiny settings; returns the token file."""
    monkeypatch.setattr(first_model, "FIRST_RUN", TINY_RUN)
    token_file = tmp_path / "token"
    call_command(
        "setup_demo",
        str(demo_images / "data"),
        token_file=token_file,
        seed_images=demo_images / "holdout",
        stdout=io.StringIO(),
    )
    return token_file


@transactional
def test_the_demo_line_is_trained_from_a_dataset_version_the_data_team_imported(demo, demo_images):
    line = Line.objects.get(name=DEMO_LINE)
    imported = DatasetImport.objects.get(line=line)
    assert (imported.state, imported.created_count) == (ExportImportState.DONE, 60)
    assert imported.created_by.username == "data"
    version = DatasetVersion.objects.get(name=DEMO_DATASET)
    assert version.item_count == 60
    assert version.created_by.username == "data"
    assert list(version.lines.values_list("name", flat=True)) == [DEMO_LINE]
    model = line.active_model
    assert model.status == ModelStatus.ACTIVE
    assert (model.line, model.dataset_version) == (line, version)
    run = PipelineRun.objects.get(candidate=model)
    assert (run.dataset_version, run.started_by.username) == (version, "supervisor")
    assert Line.objects.get(name=SHADOW_LINE).active_model == model

    # set up again (make demo a second time): nothing is imported or trained twice
    first_token = demo.read_text()
    call_command(
        "setup_demo",
        str(demo_images / "data"),
        token_file=demo,
        seed_images=demo_images / "holdout",
        stdout=io.StringIO(),
    )
    assert (DatasetImport.objects.count(), DatasetVersion.objects.count()) == (1, 1)
    assert PipelineRun.objects.count() == 1
    assert Line.objects.get(pk=line.pk).active_model == model
    assert Inspection.objects.filter(line__name=SHADOW_LINE).count() == 4
    assert demo.read_text() != first_token


@transactional
def test_demo_check_passes_on_a_live_demo_with_the_station_trickle(
    demo, demo_images, live_server, tmp_path, settings
):
    # the demo serves plain http (embedded); the suite runs the production settings
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # at full automation the tiny model decides every item, as the check wants some to be
    line = Line.objects.get(name=DEMO_LINE)
    services.set_line_level(line=line, level="full", changed_by="test", reason="test")
    answers = tmp_path / "answers.jsonl"
    token = demo.read_text().strip()
    station = threading.Thread(
        target=station_sim.run,
        kwargs=dict(
            base_url=live_server.url,
            token=token,
            interval_s=0.2,
            count=60,
            seed=1,
            answers=answers,
            out=lambda text: None,
        ),
    )
    station.start()
    try:
        checked = subprocess.run(
            [
                sys.executable,
                "scripts/demo_check.py",
                live_server.url,
                str(demo),
                str(demo_images / "holdout" / "images" / "00000.png"),
                "--answers",
                str(answers),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        station.join()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "demo check passed" in checked.stdout
    posted = Inspection.objects.filter(line=line, external_id__startswith="SIM-1-")
    assert posted.count() == 60
    assert not posted.filter(decision__isnull=True).exists()


def test_the_station_stops_when_no_server_answers(tmp_path):
    started = time.monotonic()
    answered = station_sim.run(
        base_url="http://127.0.0.1:9",  # discard port: nothing listens
        token="unused",
        interval_s=0.05,
        wait_s=0.3,
        answers=tmp_path / "answers.jsonl",
        out=lambda text: None,
    )
    assert answered == 0
    assert time.monotonic() - started < 10
    lines = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert lines and all('"status": 0' in line for line in lines)
