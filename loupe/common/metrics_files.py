"""Where each process writes its Prometheus figures, decided before prometheus_client loads.

prometheus_client's multiprocess mode keeps every process's counters in files under
PROMETHEUS_MULTIPROC_DIR, and chooses that mode when it is first imported: so this module
imports nothing of it, and settings, gunicorn.conf.py and the Celery worker call it first.

Each service writes into its own folder under LOUPE_METRICS_DIR: `web` (gunicorn),
`worker-<node name>` (a Celery worker and its pool), `other` (commands, the embedded mode). A
service empties only its own folder when it starts, so restarting one worker resets its
counters (Prometheus reads that as a counter reset) without deleting the files the web
processes still write. /metrics merges every folder (loupe.metrics_view).
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_root(environ=os.environ) -> Path:
    """LOUPE_METRICS_DIR, else <LOUPE_VAR_DIR>/prometheus (settings' VAR_DIR default)."""
    if environ.get("LOUPE_METRICS_DIR"):
        return Path(environ["LOUPE_METRICS_DIR"])
    return Path(environ.get("LOUPE_VAR_DIR") or BASE_DIR / "var") / "prometheus"


def configure_default() -> Path:
    """Point this process at the root's `other` folder unless its starter (gunicorn, a worker)
    already chose a folder under the root; return the root."""
    root = metrics_root()
    chosen = os.environ.get(ENV)
    if not chosen or Path(chosen).parent != root:
        use_folder("other", root=root)
    else:
        use_folder(Path(chosen).name, root=root)
    return root


def use_folder(name: str, *, root: Path | None = None, empty: bool = False) -> Path:
    """Write this process's (and its future children's) figures under root/name; with
    `empty`, remove what a previous run of the same service left there first."""
    folder = (root or metrics_root()) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if empty:
            for stale in folder.glob("*.db"):
                stale.unlink(missing_ok=True)
    except OSError as exc:
        # figures are not worth a process that does not start: this one keeps its own in
        # memory, and /metrics will not see them
        os.environ.pop(ENV, None)
        sys.stderr.write(f"loupe: metrics folder {folder} unusable ({exc}); not shared\n")
        return folder
    os.environ[ENV] = str(folder)
    return folder


def folder_name(text: str) -> str:
    """A node name (inference@host) as a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in text)
