import subprocess
import sys
from pathlib import Path

import ml.engine

ENGINE_DIR = Path(ml.engine.__file__).parent
FORBIDDEN = ("django", "rest_framework", "celery")


def test_engine_modules_import_no_web_or_task_framework():
    modules = sorted(f"ml.engine.{p.stem}" for p in ENGINE_DIR.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ENGINE_DIR.parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_engine_source_never_reads_settings_or_environment():
    for path in ENGINE_DIR.glob("*.py"):
        source = path.read_text()
        for needle in ("os.environ", "getenv", "django", "settings.", "set_num_threads"):
            assert needle not in source, f"{path.name} mentions {needle}"
