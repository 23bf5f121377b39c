"""Load across processes: --processes workers and a master fed by forwarding workers.

Both run real Locust processes against a real HTTP server on 127.0.0.1 and read
the records the harness would judge.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load
from tests.fixtures.loopback import free_port, http_server, text_handler


@pytest.fixture()
def server() -> Iterator[str]:
    for address in http_server(text_handler(b"ok")):
        yield f"http://{address}"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def drive(proc: LocustProcess, seconds: float = 2.5) -> None:
    assert proc.wait_for_traffic(30), proc.log_tail()
    proc.set_phase("measure")
    time.sleep(seconds)
    proc.set_phase("done")
    time.sleep(0.3)


def test_local_worker_processes_all_write_whole_lines(server: str, tmp_path: Path) -> None:
    load = Load(target="t", users=4, spawn_rate=4, processes=2, wait=0.01,
                requests=[{"name": "root", "path": "/"}])
    proc = LocustProcess(load, server, tmp_path, 30)
    proc.start()
    try:
        drive(proc)
    finally:
        proc.stop()
    rows = records(proc.records)  # every line parses: no interleaving between processes
    measured = [r for r in rows if r["phase"] == "measure"]
    assert len(measured) > 20 and {r["outcome"] for r in measured} == {"ok"}


def test_a_master_writes_what_forwarding_workers_report(server: str, tmp_path: Path) -> None:
    port = free_port()
    load = Load(target="t", users=2, spawn_rate=2, wait=0.02, expect_workers=1,
                master_bind=f"127.0.0.1:{port}", requests=[{"name": "root", "path": "/"}])
    proc = LocustProcess(load, server, tmp_path, 30)
    proc.start()
    env = dict(os.environ, CHAOS_LOAD_CONFIG=str(tmp_path / "load.json"),
               CHAOS_RECORDS_MODE="forward")
    worker = subprocess.Popen(proc.worker_command(), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        drive(proc, seconds=4.0)  # worker reports every 3 s
    finally:
        proc.stop()
        worker.terminate()
        worker.wait(timeout=15)
    rows = records(proc.records)
    assert rows, proc.log_tail()
    assert {r["outcome"] for r in rows} == {"ok"}
    assert "measure" in {r["phase"] for r in rows}, "the master assigns phases on its clock"
    rids = [r["rid"] for r in rows]  # the request id fields travel in the worker reports too
    assert len(set(rids)) == len(rids) and {r["method"] for r in rows} == {"GET"}
