"""Request ids end to end (issue 18): what the client wrote in requests.ndjson is what the
reference backend journaled, through the reference gateway and the embedded proxy.

No Docker: the loopback stack (chaos.stack.loopback) runs the apps as processes; the
backend's /journal is read just before the stack takes them down.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import requests

from chaos.engine import run_scenario
from chaos.load.runner import LocustProcess
from chaos.observe.events import EventBus
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import Load, Scenario
from chaos.stack.loopback import LoopbackStack
from chaos.stack.processes import AppProcess, launch
from tests.fixtures.loopback import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]
BACKEND_APP = REPO / "docker" / "backend" / "app.py"
SCENARIO = """\
name: request-ids
description: No fault; every client request id must reach the backend.
services:
  backend: {build: docker/backend, port: 8080}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 4
  spawn_rate: 4
  wait: 20ms
  requests:
    - {name: get, path: /api/items/1}
    - {name: chat, method: POST, path: /v1/chat/completions,
       json: {model: m, messages: [{role: user, content: hi}]}}
phases:
  - {name: baseline, duration: 2s}
"""


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)


def journal(url: str) -> list[dict[str, Any]]:
    """Every record of a backend's /journal, page by page."""
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = requests.get(f"{url}/journal", params={"after": after, "limit": 500},
                            timeout=5).json()
        assert page["journal"] is True and page["dropped"] == 0
        rows += page["attempts"]
        if not page["attempts"]:
            return rows
        after = page["next"]


class JournalReadingStack(LoopbackStack):
    """The loopback stack, reading the backend's journal just before it comes down."""

    attempts: list[dict[str, Any]] = []

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if "backend" in self.local:
            JournalReadingStack.attempts = journal(self.local["backend"].url)
        super().__exit__(kind, exc, tb)


def _stack(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> LoopbackStack:
    return JournalReadingStack(scenario, run_id, run_dir, bus)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_client_request_id_reaches_the_backend_through_gateway_and_proxy(
        tmp_path: Path) -> None:
    path = tmp_path / "request-ids.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    result = run_scenario(load_scenario(path), file=str(path), report_root=tmp_path / "reports",
                          quiet=True, stack_factory=_stack)
    rows = records(Path(result.report_dir) / "requests.ndjson")
    assert len(rows) > 50 and {r["outcome"] for r in rows} == {"ok"}, result.verdict
    rids = [r["rid"] for r in rows]
    assert len(set(rids)) == len(rids), "a fresh id per request"
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in rids)
    assert {r["method"] for r in rows} == {"GET", "POST"}
    seen = {a["rid"] for a in JournalReadingStack.attempts}
    assert set(rids) <= seen, f"{len(set(rids) - seen)} client ids never reached the backend"
    assert {a["ended"] for a in JournalReadingStack.attempts} == {"complete"}


@pytest.fixture()
def backend(tmp_path: Path) -> Any:
    """The reference backend reading ids from a JSON body field only (its header is one the
    client does not send), with slow SSE chunks."""
    port = free_port()
    app = launch(BACKEND_APP, port, tmp_path / "backend.log",
                 {"REQUEST_ID_HEADER": "X-Not-Sent", "REQUEST_ID_FIELD": "metadata.chaos_id",
                  "STREAM_CHUNK_DELAY_MS": "100"})
    try:
        assert app.healthy(), app.log()
        yield app
    finally:
        app.stop()


def test_body_field_puts_the_id_in_the_json_body_the_backend_saw(
        backend: AppProcess, tmp_path: Path) -> None:
    load = Load(target="t", users=2, spawn_rate=2, wait=0.02,
                request_id={"body_field": "metadata.chaos_id"},
                requests=[{"name": "chat", "method": "POST", "path": "/v1/chat/completions",
                           "json": {"model": "m", "metadata": {"team": "a"},
                                    "messages": [{"role": "user", "content": "hi"}]}}])
    proc = LocustProcess(load, backend.url, tmp_path, 30)
    proc.start()
    try:
        assert proc.wait_for_traffic(30), proc.log_tail()
        time.sleep(1.5)
    finally:
        proc.stop()
    rids = {r["rid"] for r in records(proc.records)}
    seen = {a["rid"] for a in journal(backend.url)}
    assert len(rids) > 10 and rids <= seen


def test_the_journal_records_a_gateway_that_hangs_up_mid_stream(backend: AppProcess) -> None:
    body = json.dumps({"model": "m", "stream": True, "max_tokens": 50,
                       "metadata": {"chaos_id": "hangs-up"}, "messages": []}).encode()
    with socket.create_connection((LOOPBACK, backend.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        seen = b""
        while b"data: " not in seen:  # the stream began: hang up
            chunk = sock.recv(65536)
            assert chunk, seen
            seen += chunk
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mine = [a for a in journal(backend.url) if a["rid"] == "hangs-up"]
        if mine:
            break
        time.sleep(0.05)
    (attempt,) = mine
    assert attempt["ended"] == "gateway_closed" and attempt["status"] == 200
    assert 1 <= attempt["events"] < 53 and attempt["first_byte"] is not None
    assert attempt["t"] <= attempt["first_byte"] <= attempt["end"]
    assert attempt["conn"].startswith(f"{LOOPBACK}:")


def test_a_request_the_gateway_gave_up_on_ends_when_it_hung_up(backend: AppProcess) -> None:
    """The journal's end of an abandoned attempt is the gateway's upstream timeout (0.2 s
    here), not when the slow handler would have answered (1 s)."""
    with pytest.raises(requests.Timeout):
        requests.post(f"{backend.url}/status/200?delay_ms=1000", timeout=0.2,
                      json={"metadata": {"chaos_id": "gave-up"}})
    deadline = time.monotonic() + 3
    while not (mine := [a for a in journal(backend.url) if a["rid"] == "gave-up"]):
        assert time.monotonic() < deadline, "the abandoned request was never journaled"
        time.sleep(0.05)
    (attempt,) = mine
    assert attempt["ended"] == "gateway_closed" and attempt["first_byte"] is None
    assert 0.15 < attempt["end"] - attempt["t"] < 0.6, attempt
