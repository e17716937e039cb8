"""Where a run's process lives, and ending the runs whose process is gone.

A stage ends its run itself on success, error, Ctrl-C and SIGTERM, but SIGKILL, the OOM killer
or a lost machine leave it RUNNING; on a shared server such runs pile up for everyone. So every
run records its process's location as tags, and whenever a stage starts on a machine it ends,
as KILLED with a tag saying why, the runs of this experiment *from that machine* whose process
is gone. Runs from other machines are never touched: only their own machine can tell whether
their process still runs.

A machine is its host name plus /etc/machine-id (two machines may share a host name). A process
is gone when the machine has rebooted since (another boot id), when no process has its pid, or
when the process with that pid started at another time (the pid was reused).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

HOST_TAG = "process.host"
MACHINE_TAG = "process.machine_id"
BOOT_TAG = "process.boot_id"
PID_TAG = "process.pid"
START_TAG = "process.started_after_boot_s"
ENDED_BY_TAG = "pipeline.ended_by"
# The kernel's id of the current boot: a new one at every boot (psutil.boot_time() is no id: it
# is the clock time less the uptime, so it moves when the clock is set or slewed).
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
# Runs to look at per sweep; a machine rarely has more than a handful stuck.
MAX_SWEPT = 200


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def started_after_boot(pid: int) -> str:
    """When process `pid` started, in seconds after the machine booted (as /proc/<pid>/stat
    gives it, in clock ticks: 0.01 s), so a clock change does not move it; "" if no process has
    that pid."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return ""
    # Both are epoch seconds from the same boot time: their difference is the kernel's count.
    return f"{created - psutil.boot_time():.2f}"


def location_tags() -> dict[str, str]:
    """This process's machine, boot and identity, recorded on every run it opens."""
    return {
        HOST_TAG: socket.gethostname(),
        MACHINE_TAG: _read("/etc/machine-id"),
        BOOT_TAG: _read(BOOT_ID_FILE),
        PID_TAG: str(os.getpid()),
        START_TAG: started_after_boot(os.getpid()),
    }


def is_this_machine(tags: dict[str, str], here: dict[str, str]) -> bool:
    return (
        tags.get(HOST_TAG) == here[HOST_TAG]
        and tags.get(MACHINE_TAG, "") == here[MACHINE_TAG]
        and bool(tags.get(BOOT_TAG))
    )


def why_gone(tags: dict[str, str], here: dict[str, str]) -> str | None:
    """Why the run's process (on this machine) is gone, or None if it may still run."""
    pid = tags.get(PID_TAG, "")
    if tags[BOOT_TAG] != here[BOOT_TAG]:
        return f"its machine {here[HOST_TAG]} rebooted since process {pid} started"
    if not pid.isdigit():
        return None
    started = started_after_boot(int(pid))
    if not started:
        return f"process {pid} on {here[HOST_TAG]} no longer exists"
    if started != tags.get(START_TAG):
        return f"process {pid} on {here[HOST_TAG]} ended (the pid now belongs to another)"
    return None


def end_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """End as KILLED this machine's RUNNING runs whose process is gone; return their ids."""
    here = location_tags()
    runs: list[Run] = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{here[HOST_TAG]}'",
        max_results=MAX_SWEPT,
    )
    ended = []
    for run in runs:
        tags = run.data.tags
        if not is_this_machine(tags, here):
            continue
        reason = why_gone(tags, here)
        if reason is None:
            continue
        client.set_tag(run.info.run_id, ENDED_BY_TAG, f"stale-run sweep: {reason}")
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended
