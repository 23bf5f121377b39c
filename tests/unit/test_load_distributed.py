"""Load across processes: --processes workers and a master fed by forwarding workers.

Both run real Locust processes against a real HTTP server on 127.0.0.1 and read
the records the harness would judge.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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
    port = _free_port()
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
