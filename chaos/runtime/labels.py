"""Labels on everything a run creates, so teardown and `chaos doctor` can find it."""

from __future__ import annotations

import datetime as dt
import os
import socket

RUN = "gateway-chaos.run"
SCENARIO = "gateway-chaos.scenario"
CREATED = "gateway-chaos.created"
PID = "gateway-chaos.pid"
HOST = "gateway-chaos.host"
SERVICE = "gateway-chaos.service"


def run_labels(run_id: str, scenario: str) -> dict[str, str]:
    return {
        RUN: run_id, SCENARIO: scenario,
        CREATED: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        PID: str(os.getpid()), HOST: socket.gethostname(),
    }


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
    return True
