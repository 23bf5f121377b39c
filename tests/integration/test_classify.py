"""Outcome classes, each produced by a real socket server on 127.0.0.1.

No mocks of the socket layer: a small threaded server misbehaves on purpose
(RST via SO_LINGER 0, clean close without an answer, close mid-body, never
answer, a full accept queue) and the client's view is classified twice:
(a) with `requests` and chaos.load.classify, as the locustfile does, and
(b) end to end through the real locustfile, run by LocustProcess as the
harness runs it, reading the NDJSON records it writes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from chaos.load.classify import (
    CLOSED,
    CONNECT_TIMEOUT,
    GRACEFUL,
    OK,
    OK_AFTER_RETRY,
    OTHER,
    READ_TIMEOUT,
    REFUSED,
    RESET,
    TRUNCATED,
    TRUNCATED_SUCCESS,
    classify_exception,
    classify_response,
)
from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load
from tests.fixtures.loopback import listening_socket

LOOPBACK = "127.0.0.1"
CLIENT_TIMEOUT = (0.3, 0.3)  # (connect, read) seconds, for the requests-based checks


# --------------------------------------------------------------------------- the server


def _http(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def _fixed(status: str, body: bytes, **extra: str) -> bytes:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return _http(status, headers, body)


def _chunked(events: list[bytes], terminate: bool = True) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return out + (b"0\r\n\r\n" if terminate else b"")


def _sse_head() -> bytes:
    return _http("200 OK", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})


_EVENTS = [b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n',
           b'data: {"choices": [{"delta": {"content": " there"}}]}\n\n']


def _rst(conn: socket.socket) -> None:
    """Close with SO_LINGER (1, 0): the kernel sends a TCP RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _fin(conn: socket.socket) -> None:
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _wait_for_client_close(conn: socket.socket) -> None:
    """Never answer: hold the connection until the client gives up (or 5 s pass)."""
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


# Each route: what the server does once it has read a whole request. It returns True
# to keep the connection alive for the next request, False once it closed it.
Route = Callable[[socket.socket], bool]


def _send(data: bytes) -> Route:
    def route(conn: socket.socket) -> bool:
        conn.sendall(data)
        return True
    return route


def _then(data: bytes, end: Callable[[socket.socket], None], pause: float = 0.0) -> Route:
    def route(conn: socket.socket) -> bool:
        if data:
            conn.sendall(data)
        if pause:
            time.sleep(pause)
        end(conn)
        return False
    return route


def _silent(conn: socket.socket) -> bool:
    _wait_for_client_close(conn)
    return False


def _stall_mid_body(conn: socket.socket) -> bool:
    conn.sendall(_http("200 OK", {"Content-Length": "100"}, b"x" * 10))
    _wait_for_client_close(conn)
    return False


ROUTES: dict[str, Route] = {
    "/ok": _send(_fixed("200 OK", b'{"ok": true}')),
    "/retried": _send(_fixed("200 OK", b'{"ok": true}', X_Gateway_Retries="2")),
    "/bad-gateway": _send(_fixed("502 Bad Gateway", b'{"error": "upstream unavailable"}')),
    "/too-many": _send(_fixed("429 Too Many Requests", b'{"error": "slow down"}',
                              Retry_After="1")),
    "/empty-503": _send(_http("503 Service Unavailable", {"Content-Length": "0"})),
    "/reset": _then(b"", _rst),
    "/reset-mid-body": _then(_http("200 OK", {"Content-Length": "100"}, b"x" * 10), _rst, 0.02),
    "/closed": _then(b"", _fin),
    "/short-body": _then(_http("200 OK", {"Content-Length": "100"}, b"x" * 10), _fin),
    "/sse-done": _send(_sse_head() + _chunked([*_EVENTS, b"data: [DONE]\n\n"])),
    "/sse-no-done": _send(_sse_head() + _chunked(_EVENTS)),
    "/sse-cut": _then(_sse_head() + _chunked(_EVENTS[:1], terminate=False), _fin),
    "/chunked-cut": _then(_http("200 OK", {"Transfer-Encoding": "chunked"})
                          + _chunked([b'{"partial": '], terminate=False), _fin),
    "/headers-cut": _then(b"HTTP/1.1 200 OK\r\nContent-Le", _fin),
    "/silent": _silent,
    "/stall-mid-body": _stall_mid_body,
}


class MisbehavingServer:
    """HTTP/1.1 over plain sockets, keep-alive, one thread per connection."""

    def __init__(self) -> None:
        self.sock, self.port = listening_socket()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(buffer) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                buffer = buffer[length:]
                route = ROUTES.get(path, _send(_fixed("404 Not Found", b"{}")))
                if not route(conn):
                    return
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._closing = True
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[MisbehavingServer]:
    srv = MisbehavingServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    """A port that is bound (so nobody else takes it) but not listening: connect gets RST."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(scope="module")
def full_backlog_url() -> Iterator[str]:
    """A listener with backlog 0 whose accept queue is filled and never drained.

    Linux drops further SYNs while the accept queue is full, so a client's connect
    hangs until its own connect timeout, which is what a black-holed upstream does.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    blocked = False
    for _ in range(16):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.settimeout(0.3)
        try:
            filler.connect((LOOPBACK, port))
        except TimeoutError:
            filler.close()
            blocked = True
            break
        fillers.append(filler)
    try:
        if not blocked:
            pytest.skip("this kernel accepts connections beyond a full backlog; "
                        "a connect timeout cannot be produced honestly on loopback")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --------------------------------------------------------------------------- (a) requests


# path -> (expected outcome, expected status or None)
CASES: dict[str, tuple[str, int | None]] = {
    "/ok": (OK, 200),
    "/retried": (OK_AFTER_RETRY, 200),
    "/bad-gateway": (GRACEFUL, 502),
    "/too-many": (GRACEFUL, 429),
    "/empty-503": (OTHER, 503),
    "/reset": (RESET, None),
    "/reset-mid-body": (RESET, None),
    "/closed": (CLOSED, None),
    "/short-body": (TRUNCATED, None),
    "/sse-done": (OK, 200),
    "/sse-no-done": (TRUNCATED_SUCCESS, 200),  # ended cleanly, without its terminator
    "/silent": (READ_TIMEOUT, None),
    "/stall-mid-body": (READ_TIMEOUT, None),
}

CHUNK_CUT_BUG = (
    "classify_exception: a chunked body (or SSE stream) cut before its terminating chunk "
    "raises ChunkedEncodingError(ProtocolError('Response ended prematurely')) with urllib3 2; "
    "only 'Connection broken' is recognised, so it is classed 'other' instead of 'truncated'"
)
HEADERS_CUT_BUG = (
    "classify_response: a connection closed in the middle of the response headers "
    "(status line complete) is parsed leniently by http.client as a 200 with an empty body "
    "and classed 'ok'; EOF before a complete response must not count as a success"
)
BUGGY: dict[str, tuple[set[str], str]] = {
    "/sse-cut": ({TRUNCATED}, CHUNK_CUT_BUG),
    "/chunked-cut": ({TRUNCATED}, CHUNK_CUT_BUG),
    "/headers-cut": ({CLOSED, TRUNCATED}, HEADERS_CUT_BUG),
}


def _classify_with_requests(url: str) -> tuple[str, str, int]:
    """What the locustfile does with one request: response -> classify_response, else
    the exception -> classify_exception."""
    try:
        response = requests.get(url, timeout=CLIENT_TIMEOUT)
    except requests.RequestException as exc:
        outcome, detail = classify_exception(exc)
        return outcome, detail, 0
    outcome, detail = classify_response(response.status_code, response.headers,
                                        response.content, "X-Gateway-Retries")
    return outcome, detail, response.status_code


@pytest.mark.parametrize("path", sorted(CASES))
def test_requests_outcome(server: MisbehavingServer, path: str) -> None:
    expected, status = CASES[path]
    outcome, detail, seen_status = _classify_with_requests(server.url + path)
    assert outcome == expected, f"{path}: {outcome} ({detail})"
    if status is not None:
        assert seen_status == status
    if expected == GRACEFUL:
        assert detail == str(status), "the graceful status is kept in the detail"


@pytest.mark.parametrize("path", sorted(BUGGY))
def test_requests_outcome_of_cut_responses(server: MisbehavingServer, path: str,
                                           request: pytest.FixtureRequest) -> None:
    allowed, _reason = BUGGY[path]
    outcome, detail, _ = _classify_with_requests(server.url + path)
    assert outcome in allowed, f"{path}: {outcome} ({detail})"


def test_requests_refused(refused_url: str) -> None:
    outcome, detail, _ = _classify_with_requests(refused_url + "/")
    assert (outcome, detail) == (REFUSED, "ConnectionRefusedError")


def test_requests_connect_timeout(full_backlog_url: str) -> None:
    started = time.monotonic()
    outcome, detail, _ = _classify_with_requests(full_backlog_url + "/")
    assert outcome == CONNECT_TIMEOUT, detail
    assert time.monotonic() - started < 2.0


def test_read_timeout_waits_for_the_client_timeout(server: MisbehavingServer) -> None:
    started = time.monotonic()
    outcome, _, _ = _classify_with_requests(server.url + "/silent")
    elapsed = time.monotonic() - started
    assert outcome == READ_TIMEOUT
    assert 0.25 <= elapsed < 2.0


def test_closed_is_not_counted_as_reset(server: MisbehavingServer) -> None:
    """RemoteDisconnected subclasses ConnectionResetError; a FIN must still be 'closed'."""
    assert _classify_with_requests(server.url + "/closed")[0] == CLOSED
    assert _classify_with_requests(server.url + "/reset")[0] == RESET


# --------------------------------------------------------------------------- (b) locust

LOCUST_SECONDS = 3.0
FAST_PATHS = sorted(set(ROUTES) - {"/silent", "/stall-mid-body"})
SLOW_PATHS = ["/silent", "/stall-mid-body"]
PHASE = "probe-phase"


def _load(paths: list[str], users: int) -> Load:
    return Load(target="gateway", users=users, spawn_rate=20, timeout="500ms",
                connect_timeout="300ms", wait="20ms",
                requests=[{"name": p.strip("/") or "root", "path": p} for p in paths])


@pytest.fixture(scope="module")
def locust_records(server: MisbehavingServer, refused_url: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four Locust runs in parallel (fast paths, slow paths, refused, connect timeout);
    returns request name -> list of NDJSON records."""
    base = tmp_path_factory.mktemp("locust")
    runs: dict[str, tuple[Load, str]] = {
        "fast": (_load(FAST_PATHS, 2), server.url),
        "slow": (_load(SLOW_PATHS, 2), server.url),
        "refused": (_load(["/refused"], 1), refused_url),
    }
    # The connect-timeout target is made here rather than through its fixture so that
    # a kernel without the full-backlog behaviour skips only that one test.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    filler_list: list[socket.socket] = []
    blocked = False
    for _ in range(16):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.settimeout(0.3)
        try:
            filler.connect(listener.getsockname())
        except TimeoutError:
            filler.close()
            blocked = True
            break
        filler_list.append(filler)
    if blocked:
        runs["blackhole"] = (_load(["/blackhole"], 1), f"http://{LOOPBACK}:"
                             f"{listener.getsockname()[1]}")
    procs: dict[str, LocustProcess] = {}
    try:
        for name, (load, url) in runs.items():
            proc = LocustProcess(load, url, base / name, LOCUST_SECONDS)
            proc.start()
            proc.set_phase(PHASE)
            procs[name] = proc
        for proc in procs.values():
            assert proc.proc is not None
            proc.proc.wait(timeout=60)
        records: dict[str, Any] = {"_blackhole": blocked, "_logs": {}, "_rc": {}}
        for name, proc in procs.items():
            records["_logs"][name] = proc.log_tail()
            records["_rc"][name] = proc.proc.returncode if proc.proc else None
            for line in proc.records.read_text().splitlines():
                record = json.loads(line)
                records.setdefault(record["name"], []).append(record)
        yield records
    finally:
        for proc in procs.values():
            proc.stop(grace=5)
        for filler in filler_list:
            filler.close()
        listener.close()


def _records_for(locust_records: dict[str, Any], path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = locust_records.get(path.strip("/"), [])
    assert found, f"Locust made no request to {path}; logs: {locust_records['_logs']}"
    return found


@pytest.mark.parametrize("path", sorted(CASES))
def test_locust_outcome(locust_records: dict[str, Any], path: str) -> None:
    expected, status = CASES[path]
    records = _records_for(locust_records, path)
    outcomes = {(r["outcome"], r["detail"]) for r in records}
    assert {r["outcome"] for r in records} == {expected}, outcomes
    if status is not None:
        assert {r["status"] for r in records} == {status}
    if status is None:
        assert {r["status"] for r in records} == {0}


@pytest.mark.parametrize("path", sorted(BUGGY))
def test_locust_outcome_of_cut_responses(locust_records: dict[str, Any], path: str,
                                         request: pytest.FixtureRequest) -> None:
    allowed, _reason = BUGGY[path]
    records = _records_for(locust_records, path)
    assert {r["outcome"] for r in records} <= allowed, {(r["outcome"], r["detail"])
                                                        for r in records}


def test_locust_refused(locust_records: dict[str, Any]) -> None:
    records = _records_for(locust_records, "/refused")
    assert {r["outcome"] for r in records} == {REFUSED}


def test_locust_connect_timeout(locust_records: dict[str, Any]) -> None:
    if not locust_records["_blackhole"]:
        pytest.skip("this kernel accepts connections beyond a full backlog")
    records = _records_for(locust_records, "/blackhole")
    assert {r["outcome"] for r in records} == {CONNECT_TIMEOUT}
    assert all(250 <= r["latency_ms"] < 2000 for r in records)


def test_locust_records_carry_phase_and_latency(locust_records: dict[str, Any]) -> None:
    """Every record has the phase the engine announced and the fields the verdict reads."""
    every = [r for key, rs in locust_records.items() if not key.startswith("_") for r in rs]
    assert len(every) > 20
    assert {r["phase"] for r in every} == {PHASE}
    for record in every:
        assert set(record) >= {"t", "phase", "name", "status", "latency_ms", "outcome", "detail"}
    read_timeouts = _records_for(locust_records, "/silent")
    assert all(450 <= r["latency_ms"] < 2000 for r in read_timeouts)


def test_locust_runs_end_on_their_own(locust_records: dict[str, Any]) -> None:
    """Bounded by -t, each Locust process exited by itself, with status 0."""
    assert locust_records["_rc"] and set(locust_records["_rc"].values()) == {0}, (
        locust_records["_rc"], locust_records["_logs"])
