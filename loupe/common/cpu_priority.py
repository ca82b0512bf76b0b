"""A worker process that serves background work alone (batch predictions, a mirror
challenger) steps back from the cores once, so the operating system runs station work first
when both want one: the idle scheduling class (any other process that wakes up takes the core
at once, where a mere nice value still makes a waking station item wait for the background
task's time slice) and the lowest nice value."""

import logging
import os

logger = logging.getLogger(__name__)

_stepped_back = False


def step_back_from_station_work(*, nice: int, kind: str) -> None:
    """Lower this process's CPU priority by `nice` (0: leave it) and, on Linux, move it to the
    idle scheduling class; once per process. Call it only in a process that serves nothing a
    station waits for (never the web process, which runs tasks in the embedded mode)."""
    global _stepped_back
    if _stepped_back:
        return
    _stepped_back = True
    if nice <= 0:
        return
    os.nice(nice)
    idle = hasattr(os, "SCHED_IDLE")
    if idle:  # threads started from here on (torch's, if any) inherit it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    logger.info(
        "%s worker process %s runs at nice %d%s",
        kind,
        os.getpid(),
        os.nice(0),
        " in the idle scheduling class" if idle else "",
    )
