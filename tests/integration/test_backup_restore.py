"""scripts/backup.sh and scripts/restore.sh, run once for real as docs/OPERATIONS.md says: an
install with a line, a station, an inspection and its stored image, and a model version's
artifact is backed up, then restored into a NEW PostgreSQL database and new folders; the
restored install has the same rows, and reads its image and loads its model."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

from inspection import services
from inspection.storage import image_path
from ml.services import set_active_version
from tests.helpers import seed_inspection

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def database_url(name: str) -> str:
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{db['USER'] or 'postgres'}@{host}/{name}"


def run(script: str, *args, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(ROOT / "scripts" / script), *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "select tablename from pg_tables where schemaname = 'public' order by tablename"
        ).fetchall()
        return {
            name: conn.execute(f'select count(*) from "{name}"').fetchone()[0] for (name,) in tables
        }


@pytest.fixture
def new_database(real_services):
    name = f"{connection.settings_dict['NAME']}_restored"
    admin = database_url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    yield database_url(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_a_backup_restores_into_a_new_database_and_folders(
    make_line, station_with_token, model_version, new_database, tmp_path
):
    line = make_line("press-backup")
    station, _ = station_with_token(line)
    inspection = seed_inspection(station, "SN-backup-1")
    set_active_version(line=line, model_version=model_version, changed_by="test")
    services.create_station(line=line, name="cam-2")
    image_sha = hashlib.sha256(image_path(inspection.image.name).read_bytes()).hexdigest()
    source = {
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "LOUPE_MODEL_DIR": str(django_settings.LOUPE_MODEL_DIR),
    }

    started = time.monotonic()
    run("backup.sh", tmp_path / "backup", **source)
    backed_up = time.monotonic() - started
    restored_dirs = tmp_path / "restored"
    target = {
        "DATABASE_URL": new_database,
        "MEDIA_ROOT": str(restored_dirs / "media"),
        "LOUPE_MODEL_DIR": str(restored_dirs / "models"),
    }
    started = time.monotonic()
    run("restore.sh", tmp_path / "backup", **target)
    restored = time.monotonic() - started
    print(f"backup {backed_up:.1f} s, restore {restored:.1f} s")

    assert row_counts(new_database) == row_counts(source["DATABASE_URL"])
    # the restored install, on its own database and folders, reads the image and loads the model
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", READ_BACK],
        cwd=ROOT,
        env={**os.environ, **target},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    found = json.loads(shown.stdout.strip().splitlines()[-1])
    assert found == {
        "line": "press-backup",
        "stations": ["cam-1", "cam-2"],
        "active_model": model_version.name,
        "image_sha256": image_sha,
        "image_size": [128, 128],
        "model_classes": list(model_version.classes),
    }
    # and a second restore over the first is refused: restore never overwrites
    again = subprocess.run(
        [str(ROOT / "scripts" / "restore.sh"), str(tmp_path / "backup")],
        env={**os.environ, **target},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "restore only into a new, empty one" in again.stderr


READ_BACK = """
import hashlib, json
from PIL import Image
from django.conf import settings
from inspection.models import Inspection
from inspection.storage import image_path
from ml.engine.artifact import load_artifact

item = Inspection.objects.select_related("line__active_model").get(external_id="SN-backup-1")
path = image_path(item.image.name)
with Image.open(path) as image:
    image.load()
    size = list(image.size)
version = item.line.active_model
model = load_artifact(settings.LOUPE_MODEL_DIR / version.artifact_path,
                      expected_sha256=version.artifact_sha256)
print(json.dumps({
    "line": item.line.name,
    "stations": sorted(item.line.stations.values_list("name", flat=True)),
    "active_model": version.name,
    "image_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    "image_size": size,
    "model_classes": list(model.classes),
}))
"""
