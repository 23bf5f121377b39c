"""The witness poller against a stand-in source on 127.0.0.1 speaking the contract's JSON
(`?after=&limit=` -> {"attempts", "next", "dropped", "connections"}): what lands in
upstream.ndjson and in result.witness's summary."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chaos.witness.poll import Source, WitnessPoller
from chaos.witness.records import read_attempts
from tests.fixtures.loopback import http_server


class Stand:
    """A source's state: its records (seq contiguous, or with holes), and whether it answers."""

    def __init__(self) -> None:
        self.seq = 0
        self.records: list[dict[str, Any]] = []
        self.answering = True
        self.asked: list[int] = []  # the after= of every request
        self.connections = {"http": 0, "tls": 0, "unknown": 0}
        self.lock = threading.Lock()

    def add(self, n: int, skip: int = 0) -> None:
        """n attempts; `skip` seqs before them were lost to the ring (never readable)."""
        with self.lock:
            self.seq += skip
            for _ in range(n):
                self.seq += 1
                self.records.append({"seq": self.seq, "conn": f"backend#{self.seq}",
                                     "rid": f"{self.seq:032x}", "method": "GET", "path": "/",
                                     "t": time.time(), "first_byte": None, "end": None,
                                     "status": 200, "ended": "complete", "retry_after": None,
                                     "events": 0})
            self.connections["http"] += n

    def restart(self) -> None:
        """The process came back: its counter begins again at 1, its ring is empty."""
        with self.lock:
            self.seq, self.records = 0, []
            self.connections = {"http": 0, "tls": 0, "unknown": 0}

    def page(self, after: int, limit: int) -> dict[str, Any]:
        with self.lock:
            self.asked.append(after)
            if after > self.seq:  # as the reference backend's journal does after a restart
                after = 0
            rows = [r for r in self.records if r["seq"] > after][:limit]
            return {"tap": True, "attempts": rows, "next": rows[-1]["seq"] if rows else after,
                    "dropped": 0, "connections": dict(self.connections)}


@pytest.fixture
def stand() -> Iterator[tuple[Stand, str]]:
    state = Stand()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not state.answering:
                self.send_response(503)
                self.end_headers()
                return
            query = parse_qs(urlsplit(self.path).query)
            body = json.dumps(state.page(int(query["after"][0]), int(query["limit"][0]))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    for address in http_server(Handler):
        yield state, f"http://{address}/proxies/backend/attempts"


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_drains_with_after_and_once_more_at_stop(stand: tuple[Stand, str], tmp_path: Path) -> None:
    state, url = stand
    state.add(25)
    out = tmp_path / "upstream.ndjson"
    poller = WitnessPoller([Source("tap:backend", url)], out, interval=0.05, limit=10)
    poller.start()
    _until(lambda: poller.sources[0].attempts == 25)
    state.add(3)  # after the last drain of the thread: only stop()'s drain reads them
    poller._stop.set()
    poller._thread.join(timeout=5)
    poller.stop()
    attempts = list(read_attempts(out))
    assert [a.seq for a in attempts] == list(range(1, 29))  # each once, in order
    assert {a.source for a in attempts} == {"tap:backend"}
    assert state.asked[:3] == [0, 10, 20]  # pages of `limit`, each from the last seq read
    summary = poller.summary("tap")
    assert summary == {"kind": "tap", "sources": ["tap:backend"], "attempts": 28, "dropped": 0,
                       "connections": {"http": 28, "tls": 0, "unknown": 0}, "note": ""}


def test_survives_a_restart_of_the_counter(stand: tuple[Stand, str], tmp_path: Path) -> None:
    state, url = stand
    out = tmp_path / "upstream.ndjson"
    poller = WitnessPoller([Source("journal:backend", url, service="backend")], out,
                           interval=0.05)
    state.add(50)
    poller.drain()
    state.restart()
    state.add(7)  # seq 1..7 again: below the poller's after=50
    poller.drain()
    poller.stop()
    attempts = list(read_attempts(out))
    assert len(attempts) == 57
    assert [a.seq for a in attempts[50:]] == list(range(1, 8))
    summary = poller.summary("journal")
    assert summary["attempts"] == 57 and summary["dropped"] == 0
    assert "journal:backend restarted 1 time(s)" in summary["note"]


def test_records_the_attempts_it_never_saw_as_dropped(stand: tuple[Stand, str],
                                                      tmp_path: Path) -> None:
    """The ring overflowed past the poller: seqs 11-15 were never readable."""
    state, url = stand
    out = tmp_path / "upstream.ndjson"
    poller = WitnessPoller([Source("tap:backend", url)], out)
    state.add(10)
    poller.drain()
    state.add(4, skip=5)
    poller.stop()
    summary = poller.summary("tap")
    assert (summary["attempts"], summary["dropped"]) == (14, 5)
    assert "5 attempts of tap:backend were dropped" in summary["note"]


def test_a_source_that_stops_answering_is_a_dead_part(stand: tuple[Stand, str],
                                                      tmp_path: Path) -> None:
    state, url = stand
    poller = WitnessPoller([Source("tap:backend", url)], tmp_path / "upstream.ndjson")
    poller.drain()
    state.answering = False
    for _ in range(3):
        poller.drain()
    finding = poller.check()
    assert finding is not None
    assert finding[0] == f"the upstream witness tap:backend ({url})"
    assert "stopped answering" in finding[1] and "HTTP 503" in finding[2]


def test_a_faulted_journal_service_is_a_gap_not_a_dead_part(stand: tuple[Stand, str],
                                                            tmp_path: Path) -> None:
    state, url = stand
    faulted: set[str] = set()
    poller = WitnessPoller([Source("journal:backend", url, service="backend")],
                           tmp_path / "upstream.ndjson", excused=lambda s: s in faulted)
    faulted.add("backend")  # the scenario killed it
    state.answering = False
    for _ in range(4):
        poller.drain()
    assert poller.check() is None
    state.answering = True
    poller.drain()
    poller.stop()
    note = poller.summary("journal")["note"]
    assert "journal:backend did not answer for" in note and "while backend was faulted" in note


def test_a_journal_that_moved_is_followed(stand: tuple[Stand, str], tmp_path: Path) -> None:
    """A restarted container publishes its port anew: the source asks where it is now."""
    state, url = stand
    where = ["http://127.0.0.1:9/journal"]  # where it was: nobody listens there any more
    source = Source("journal:backend", where[0], service="backend", resolve=lambda: where[0])
    poller = WitnessPoller([source], tmp_path / "upstream.ndjson", excused=lambda s: True)
    state.add(4)
    poller.drain()
    assert source.attempts == 0
    where[0] = url
    poller.drain()  # the failed drain asked again; this one reads from the new place
    poller.drain()
    poller.stop()
    assert source.attempts == 4 and poller.check() is None


def test_the_docker_stack_follows_a_restarted_service_to_its_new_port(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from chaos.errors import ServiceNotReady
    from chaos.observe.events import EventBus
    from chaos.scenario.loader import load_scenario
    from chaos.stack.docker import DockerStack
    from tests.fixtures.scenarios import write_scenario

    ports = {"backend": 32771}

    class Env:
        services = {"backend": SimpleNamespace(port=8080, host_port=32768),
                    "gateway": SimpleNamespace(port=8000, host_port=32769)}

        def host_port(self, name: str, port: int) -> int:
            if name not in ports:
                raise ServiceNotReady(name, "port was not published")
            return ports[name]

    stack = DockerStack(load_scenario(write_scenario(tmp_path)), "r1", tmp_path, EventBus())
    stack.env = Env()  # type: ignore[assignment]
    stack.moved({"backend"})
    assert stack.env.services["backend"].host_port == 32771
    ports.clear()  # killed: no port published; the last one is kept
    stack.moved({"backend", "gateway"})
    assert stack.env.services["backend"].host_port == 32771
    assert stack.env.services["gateway"].host_port == 32769
