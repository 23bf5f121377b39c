"""Labels on everything a run creates, so teardown and `chaos doctor` can find it."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

RUN = "gateway-chaos.run"
SCENARIO = "gateway-chaos.scenario"
CREATED = "gateway-chaos.created"
PID = "gateway-chaos.pid"
PID_START = "gateway-chaos.pid-start"
HOST = "gateway-chaos.host"
SERVICE = "gateway-chaos.service"
NETWORK = "gateway-chaos.network"  # "control": the Toxiproxy API's own network


def run_labels(run_id: str, scenario: str) -> dict[str, str]:
    labels = {
        RUN: run_id, SCENARIO: scenario,
        CREATED: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        PID: str(os.getpid()), HOST: socket.gethostname(),
    }
    started = process_start(os.getpid())
    if started:
        labels[PID_START] = started
    return labels


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_alive(labels: dict[str, str]) -> bool:
    """Is the process that created a resource still running on this host?"""
    if labels.get(HOST) != socket.gethostname():
        return True  # another machine's run: never ours to judge
    try:
        pid = int(labels.get(PID, "0"))
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    expected = labels.get(PID_START)
    if expected:
        actual = process_start(pid)
        if actual is not None and actual != expected:
            return False  # the pid now belongs to another process
        if _zombie(pid):
            return False
    return True


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] == "Z"
