"""The processes of a fault test: its own PostgreSQL and Redis, gunicorn and a Celery worker.

Each runs in its own session, so a signal to its group reaches its children (the pool, the
gunicorn workers) and nothing else. PostgreSQL runs as the `postgres` user (it refuses root)
from a folder under /tmp that user can reach.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_BIN = Path(PG_BINS[-1] if PG_BINS else "/usr/lib/postgresql/missing/bin")


# a pool process's log line once it has loaded the model (the world's model is named so)
WARMED_UP = "warmed up model faults"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(what: str, ready, *, timeout: float, poll: float = 0.1, alive=None) -> float:
    """Wait until ready() is true; return the monotonic time it became so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return time.monotonic()
        if alive is not None:
            alive()
        time.sleep(poll)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def postgres_folder(prefix: str) -> Path:
    """A folder the postgres user owns, on a path it can traverse (pytest's tmp is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    shutil.chown(folder, "postgres", "postgres")
    return folder


def as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


class Postgres:
    """A PostgreSQL cluster of its own on its own port; restartable like the real service."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data, self.port, self.log = data, port, log
        self.process: subprocess.Popen | None = None

    @classmethod
    def init(cls, folder: Path, log: Path) -> Postgres:
        if not PG_BINS:
            raise RuntimeError("the fault suite needs PostgreSQL's server binaries (postgresql)")
        data = folder / "data"
        subprocess.run(
            as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"),
            check=True, capture_output=True,
        )  # fmt: skip
        return cls(data, free_port(), log)

    @classmethod
    def copy_of(cls, template: Postgres, folder: Path, log: Path) -> Postgres:
        data = folder / "data"
        subprocess.run(["cp", "-a", str(template.data), str(data)], check=True)
        return cls(data, free_port(), log)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def start(self) -> float:
        log = open(self.log, "a")  # noqa: SIM115 - the server holds it until it exits
        self.process = subprocess.Popen(
            as_postgres(str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                        "-c", "listen_addresses=127.0.0.1",
                        "-c", f"unix_socket_directories={self.data}", "-c", "fsync=off"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        return wait_for("postgres", self.accepts, timeout=30, alive=self._check)

    def accepts(self) -> bool:
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres"],
            check=False,
        )  # fmt: skip
        return result.returncode == 0

    def _check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"postgres exited:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """A fast shutdown, as `systemctl restart postgresql` does: sessions are cut."""
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(
            as_postgres(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                        "-w", "-t", "30"),
            check=False, capture_output=True,
        )  # fmt: skip
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class RedisServer:
    """redis-server with no periodic snapshots; a restart keeps the data only if asked."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.log = folder / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        log = open(self.log, "a")  # noqa: SIM115 - the server holds it until it exits
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        return wait_for("redis", lambda: port_open(self.port), timeout=10, poll=0.02)

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop; with keep_data, save first, as `systemctl restart redis-server` does with
        the packaged configuration (queued and unacknowledged messages survive)."""
        if self.process is None or self.process.poll() is not None:
            return
        if keep_data:
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "shutdown", "save"],
                check=False, capture_output=True,
            )  # fmt: skip
        else:
            self.process.terminate()
        self.process.wait(timeout=10)


class LoupeProcess:
    """gunicorn or a Celery worker with the fault test's environment."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path) -> None:
        self.name, self.log_path = name, log
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def text(self) -> str:
        return self.log_path.read_text()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.text()[-3000:]}")

    def children(self) -> list[int]:
        """Direct children: gunicorn's workers, or the Celery pool's processes."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def child_reading(self, path: Path) -> int | None:
        """The child process that has `path` open (a pool process predicting on it), if any."""
        for pid in self.children():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
                if any(os.readlink(fd) == str(path) for fd in fds):
                    return pid
            except OSError:  # the process or the descriptor went away meanwhile
                continue
        return None

    def child_serving(self, server_port: int, client_port: int) -> int | None:
        """The child process (a gunicorn worker) that holds this client's TCP connection."""
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(a.split(":")[1], 16) for a in fields[1:3])
            if (local, remote) == (server_port, client_port):
                inode = fields[9]
        if inode is None:
            return None
        for pid in self.children():
            try:
                if any(
                    os.readlink(fd) == f"socket:[{inode}]"
                    for fd in Path(f"/proc/{pid}/fd").iterdir()
                ):
                    return pid
            except OSError:
                continue
        return None

    def stop(self) -> None:
        """Kill it and its children: the run is over, and a graceful stop costs seconds."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


def start_gunicorn(env: dict, log: Path, *, workers: int = 2) -> tuple[LoupeProcess, int]:
    port = free_port()
    web = LoupeProcess(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "loupe.wsgi", "-k", "gthread", "--threads", "8",
         "-w", str(workers), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3"],
        env, log,
    )  # fmt: skip
    return web, port


def start_worker(env: dict, log: Path, *, concurrency: int = 2) -> LoupeProcess:
    return LoupeProcess(
        "worker",
        [sys.executable, "-m", "celery", "-A", "loupe", "worker", "-Q", "inference",
         "--pool=prefork", f"--concurrency={concurrency}", "-l", "info", "-n", "faults@%h"],
        env, log,
    )  # fmt: skip
