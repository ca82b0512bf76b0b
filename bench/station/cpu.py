"""CPU accounting from /proc: the services' and the machine's CPU time, PostgreSQL sessions,
and what else used the cores during a measured window."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from .config import DB_NAME, PG_URL
from .processes import Service

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats():
    """(pid, command name, the /proc/PID/stat fields after the name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it exited while we looked
        yield (
            int(entry),
            text[text.find("(") + 1 : text.rfind(")")],
            text[text.rfind(")") + 2 :].split(),
        )


def session_cpu_s(session_id: int) -> float:
    """CPU seconds of the live processes of one session (a service and all its children)."""
    total = 0
    for _pid, _comm, fields in proc_stats():
        if int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def session_memory_mb(session_id: int) -> list[float]:
    """Resident memory (MB) of each live process of one session, largest first."""
    page = os.sysconf("SC_PAGE_SIZE")
    return sorted(
        (
            round(int(fields[21]) * page / 2**20, 1)
            for _pid, _comm, fields in proc_stats()
            if int(fields[3]) == session_id
        ),
        reverse=True,
    )


def machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def pg_sessions() -> int:
    """Sessions ever opened to the bench database: a new connection per request shows here."""
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (DB_NAME,)
        ).fetchone()
    return int(row[0])


def cpu_snapshot(web: Service, worker: Service) -> dict:
    times = os.times()
    return {
        "web": session_cpu_s(web.process.pid),
        "worker": session_cpu_s(worker.process.pid),
        "client": times.user + times.system,
        "machine": machine_busy_s(),
    }


def process_table() -> dict[int, tuple[int, float, float, bool]]:
    """pid -> (parent pid, own CPU s, reaped children's CPU s, is a measured service)."""
    table = {}
    for pid, comm, fields in proc_stats():
        own = (int(fields[11]) + int(fields[12])) / CLK_TCK
        reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
        # PostgreSQL and Redis are part of the measured path, and kernel threads (children of
        # kthreadd, pid 2) carry its network and disk work
        service = comm.startswith(("postgres", "redis-server")) or 2 in (pid, int(fields[1]))
        table[pid] = (int(fields[1]), own, reaped, service)
    return table


class LoadWatch:
    """What else used the CPU during a window: another test run or a training job on the
    same cores would make a disturbed run look like a clean one.

    Processes still running are reported by name. CPU that no living process accounts for
    (commands that came and went inside the window, in another session) shows as
    `other_cores` with them.
    """

    def __init__(self, window: str) -> None:
        self.window = window
        self.before = process_table()
        self.busy = machine_busy_s()
        self.started = time.monotonic()

    def ours(self, pid: int, table: dict) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == os.getpid():
                return True
            seen.add(pid)
            pid = table.get(pid, self.before.get(pid, (0,)))[0]
        return False

    def result(self, min_cpu_s: float = 0.5) -> dict:
        after = process_table()
        seconds = time.monotonic() - self.started
        busy = machine_busy_s() - self.busy
        accounted, foreign, processes = 0.0, 0.0, []
        for pid, (_, own, reaped, service) in after.items():
            _, own0, reaped0, _ = self.before.get(pid, (0, 0.0, 0.0, False))
            used = own - own0
            accounted += used
            if service or self.ours(pid, after):
                # their reaped children (a task's PostgreSQL backend, a ceiling process)
                # ran in the window as part of the measurement
                accounted += reaped - reaped0
                continue
            foreign += used
            if used >= min_cpu_s:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    cmdline = b"?"
                processes.append(f"pid {pid} used {used:.1f} CPU s: {cmdline.decode()[:90]}")
        other_cores = (foreign + max(busy - accounted, 0.0)) / seconds
        return {
            "window": self.window,
            "seconds": seconds,
            "other_cores": other_cores,
            "processes": processes,
        }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
