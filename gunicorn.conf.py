"""gunicorn's hooks for Loupe's metrics; gunicorn reads this file from its working directory
(deploy/systemd/loupe-web.service names it too).

The web processes write their Prometheus figures into LOUPE_METRICS_DIR/web, which the
master empties when it starts (a fresh start resets the counters, as Prometheus expects) and
where it forgets each exited worker's live gauges. The master never loads Django, so the
folder is chosen here, before any worker imports prometheus_client.
"""

from loupe.common import metrics_files

WEB_FOLDER = metrics_files.use_folder("web", empty=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(WEB_FOLDER))
