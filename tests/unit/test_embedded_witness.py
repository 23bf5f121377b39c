"""The HTTP tap through the real embedded server on 127.0.0.1: one test per way an
attempt ends, as ``GET /proxies/{name}/attempts`` shows it, and the bytes unchanged."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.proxy.embedded import ServerThread
from tests.fixtures.embedded import LoopbackTCPServer, proxy_fixtures
from tests.fixtures.loopback import LOOPBACK, free_port, serving, toxiproxy_proxy
from tests.unit.test_embedded_tap import Exchange, _build, _expected, exchanges

RID = "0123456789abcdef0123456789abcdef"


def _read_head(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class _Upstream(socketserver.BaseRequestHandler):
    """An HTTP/1.1 upstream whose path says how it answers (keep-alive)."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        buf = b""
        while (got := _read_head(sock, buf)) is not None:
            head, buf = got
            path = head.split(b" ")[1].decode()
            if path == "/replay":  # read to EOF, then answer with the test's response bytes
                while data := sock.recv(65536):
                    buf += data
                REPLAY["got"] = head + b"\r\n\r\n" + buf
                sock.sendall(REPLAY["send"])
                return
            if not self._answer(sock, path):
                return

    def _answer(self, sock: socket.socket, path: str) -> bool:
        if path == "/ok":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        elif path == "/chunked":
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        elif path == "/sse":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for index in range(5):
                event = b"data: %d\n\n" % index
                sock.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            sock.sendall(b"0\r\n\r\n")
        elif path == "/slow":  # half a response, then the rest much later
            sock.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 3\r\nContent-Length: 10\r\n\r\n12345")
            time.sleep(0.5)
            sock.sendall(b"67890")
            return False
        elif path == "/reset":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # an RST, no FIN before it
            return False
        elif path == "/big":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"b" * 100_000)
        return True


REPLAY: dict[str, bytes] = {}


upstream, api, proxy = proxy_fixtures(_Upstream, tap=True)


def _attempts(proxy: dict[str, Any], count: int = 1, ended: bool = True,
              timeout: float = 5.0) -> dict[str, Any]:
    """The attempts page once ``count`` records are there (ended ones, or open too)."""
    deadline = time.monotonic() + timeout
    while True:
        page: dict[str, Any] = requests.get(
            f"{proxy['api']}/attempts", params={"open": "0" if ended else "1"}, timeout=5).json()
        if len(page["attempts"]) >= count or time.monotonic() > deadline:
            return page
        time.sleep(0.02)


def _get(path: str, rid: str = RID, method: str = "GET") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: up\r\nX-Chaos-Request-Id: {rid}\r\n\r\n").encode()


def _connect(proxy: dict[str, Any]) -> socket.socket:
    return socket.create_connection((LOOPBACK, proxy["port"]), timeout=5)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def test_a_keep_alive_exchange_is_two_complete_attempts(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/ok", "a" * 32))
        first = _recv_exactly(sock, 43)
        sock.sendall(_get("/ok", "b" * 32, method="POST")[:-2] + b"Content-Length: 3\r\n\r\nabc")
        second = _recv_exactly(sock, 43)
    assert first == second == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    page = _attempts(proxy, 2)
    got = [(a["rid"], a["method"], a["path"], a["status"], a["ended"]) for a in page["attempts"]]
    assert got == [("a" * 32, "GET", "/ok", 200, "complete"),
                   ("b" * 32, "POST", "/ok", 200, "complete")]
    one, two = page["attempts"]
    assert one["conn"] == two["conn"] and one["conn"].startswith(f"{proxy['name']}#")
    assert one["t"] <= one["first_byte"] <= one["end"] <= two["t"]
    assert page["next"] == two["seq"] and page["connections"]["http"] == 1
    later = requests.get(f"{proxy['api']}/attempts", params={"after": page["next"]}, timeout=5)
    assert later.json()["attempts"] == []


def test_chunked_and_sse_responses(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/chunked") + _get("/sse") + _get("/big"))  # pipelined
        data = b""
        while not data.endswith(b"b" * 1000):
            data += sock.recv(65536)
        while data.count(b"b") < 100_000:
            data += sock.recv(65536)
    page = _attempts(proxy, 3)
    got = [(a["path"], a["status"], a["ended"], a["events"]) for a in page["attempts"]]
    assert got == [("/chunked", 200, "complete", None), ("/sse", 200, "complete", 5),
                   ("/big", 200, "complete", None)]


def test_gateway_fin_mid_response(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/slow"))
        head = b"HTTP/1.1 503 Busy\r\nRetry-After: 3\r\nContent-Length: 10\r\n\r\n12345"
        assert _recv_exactly(sock, len(head)) == head
        sock.shutdown(socket.SHUT_WR)  # a FIN: the gateway gave up on the attempt
        time.sleep(0.1)
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["status"], attempt["retry_after"]) == ("gateway_fin", 503,
                                                                             "3")
    assert attempt["end"] - attempt["first_byte"] < 0.4  # when the FIN came, not the close


def test_gateway_rst_mid_response(proxy: dict[str, Any]) -> None:
    sock = _connect(proxy)
    sock.sendall(_get("/slow"))
    _recv_exactly(sock, 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    [attempt] = _attempts(proxy)["attempts"]
    assert attempt["ended"] == "gateway_rst"


def test_upstream_reset(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/reset"))
        got = b""
        while data := sock.recv(65536):  # the proxy passes the reset on as a close
            got += data
        assert got.endswith(b"partial")
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["status"], attempt["rid"]) == ("upstream_reset", 200, RID)


@pytest.mark.parametrize("toxic", [
    {"type": "reset_peer", "attributes": {"timeout": 50}},
    {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 100}},
    {"type": "limit_data", "attributes": {"bytes": 30}},
], ids=["reset_peer", "timeout", "limit_data"])
def test_a_toxic_cutting_the_connection(proxy: dict[str, Any], toxic: dict[str, Any]) -> None:
    requests.post(f"{proxy['api']}/toxics", json=toxic, timeout=5).raise_for_status()
    with _connect(proxy) as sock:
        sock.sendall(_get("/slow"))
        with pytest.raises(ConnectionResetError) if toxic["type"] == "reset_peer" else \
                contextlib.nullcontext():
            while sock.recv(65536):
                pass
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["rid"]) == ("toxic", RID)


def test_a_refused_upstream_keeps_the_rid_read_by_peek(api: str) -> None:
    name = "refused_peek"
    info = next(toxiproxy_proxy(api, name, f"{LOOPBACK}:{free_port()}"))
    try:
        with socket.create_connection((LOOPBACK, info["port"]), timeout=5) as sock:
            sock.sendall(_get("/v1/chat", method="POST"))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
        [attempt] = _attempts(info)["attempts"]
        assert (attempt["ended"], attempt["rid"], attempt["method"], attempt["path"]) == (
            "refused", RID, "POST", "/v1/chat")
    finally:
        requests.delete(info["api"], timeout=5)


def test_tls_is_counted_and_passed_through(proxy: dict[str, Any]) -> None:
    hello = b"\x16\x03\x01\x00\x30" + bytes(range(48)) + b"\r\n\r\n"
    with _connect(proxy) as sock:
        sock.sendall(hello + b"/replay\r\n\r\n")  # never parsed: no attempt, no error
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    page = _attempts(proxy, 1, timeout=0.5)
    assert page["attempts"] == [] and page["connections"] == {"http": 0, "tls": 1, "unknown": 0}


def test_open_attempts_are_listed_on_request(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/slow"))
        _recv_exactly(sock, 20)
        page = _attempts(proxy, ended=False)
        assert [(a["seq"], a["ended"]) for a in page["attempts"]] == [(None, "open")]
        assert requests.get(f"{proxy['api']}/attempts", timeout=5).json()["attempts"] == []


def test_tap_settings_name_the_request_id(proxy: dict[str, Any]) -> None:
    bad = requests.post(f"{proxy['api']}/tap", json={"request_id_header": "bad header"},
                        timeout=5)
    assert bad.status_code == 400 and "request_id_header" in bad.json()["error"]
    good = requests.post(f"{proxy['api']}/tap", json={"request_id_header": "X-Trace",
                                                      "request_id_field": "user"}, timeout=5)
    assert good.json() == {"tap": True, "request_id_header": "X-Trace",
                           "request_id_field": "user"}
    body = b'{"user": "u-1"}'
    with _connect(proxy) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nX-Trace: t-1\r\n\r\n")
        _recv_exactly(sock, 43)
        sock.sendall(b"POST /ok HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        _recv_exactly(sock, 43)
    assert [a["rid"] for a in _attempts(proxy, 2)["attempts"]] == ["t-1", "u-1"]


def test_tap_off_answers_tap_false(upstream: str) -> None:
    with ServerThread(LOOPBACK, 0, tap=False) as server:
        info = next(toxiproxy_proxy(server.url, "off", upstream))
        with _connect(info) as sock:
            sock.sendall(_get("/ok"))
            _recv_exactly(sock, 43)
        page = requests.get(f"{info['api']}/attempts", timeout=5).json()
    assert page == {"tap": False, "attempts": [], "next": 0, "dropped": 0,
                    "connections": {"http": 0, "tls": 0, "unknown": 0}}


class _Replay(socketserver.BaseRequestHandler):
    """Read the test's request bytes, keep them, answer its response bytes, close."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        got = b""
        while len(got) < len(REPLAY["expect"]) and (data := sock.recv(1 << 20)):
            got += data
        REPLAY["got"] = got
        sock.sendall(REPLAY["send"])


@pytest.fixture(scope="module")
def replay(api: str) -> Iterator[dict[str, Any]]:
    with serving(LoopbackTCPServer((LOOPBACK, 0), _Replay)) as address:
        yield from toxiproxy_proxy(api, "replay", address)


def _replay(proxy: dict[str, Any], items: list[Exchange], seed: int,
            close_last: bool) -> list[dict[str, Any]]:
    """Send the items' requests through the proxy, read the responses back to EOF."""
    after = requests.get(f"{proxy['api']}/attempts", timeout=5).json()["next"]
    sent, answer = _build(items, seed, close_last)
    REPLAY["send"], REPLAY["expect"] = answer, sent
    with _connect(proxy) as sock:
        sock.sendall(sent)
        got = b""
        while data := sock.recv(1 << 20):
            got += data
    assert REPLAY["got"] == sent
    assert got == answer
    deadline = time.monotonic() + 5
    while True:
        page = requests.get(f"{proxy['api']}/attempts", params={"after": after}, timeout=5)
        found: list[dict[str, Any]] = page.json()["attempts"]
        if len(found) >= len(items) or time.monotonic() > deadline:
            return found


def _same(found: list[dict[str, Any]], items: list[Exchange]) -> None:
    keys = ("rid", "method", "path", "status", "ended", "retry_after", "events")
    assert [{k: a[k] for k in keys} for a in found] == [
        {k: _expected(ex, i)[k] for k in keys} for i, ex in enumerate(items)]


@settings(max_examples=12, deadline=None)
@given(st.lists(exchanges, min_size=1, max_size=5), st.integers(0, 2**32), st.booleans(),
       st.booleans())
def test_bytes_are_forwarded_unchanged(replay: dict[str, Any], items: list[Exchange],
                                       seed: int, big: bool, close_last: bool) -> None:
    if big:  # bodies large enough for the splice path in both directions
        items = [Exchange("POST", RID, "length", False, 200, "length", 0, 400_000), *items]
    _same(_replay(replay, items, seed, close_last), items)


def test_spliced_bodies_and_a_close_delimited_end(replay: dict[str, Any]) -> None:
    items = [Exchange("POST", RID, "chunked", True, 200, "sse", 3, 200_000),
             Exchange("PUT", None, "length", False, 200, "length", 0, 2_000_000),
             Exchange("GET", None, "none", False, 200, "close", 0, 300_000)]
    _same(_replay(replay, items, 7, True), items)


def test_env_switches_the_tap_off(monkeypatch: pytest.MonkeyPatch, upstream: str) -> None:
    monkeypatch.setenv("CHAOS_PROXY_TAP", "0")
    with ServerThread(LOOPBACK, 0) as server:
        info = next(toxiproxy_proxy(server.url, "env_off", upstream))
        assert requests.get(f"{info['api']}/attempts", timeout=5).json()["tap"] is False


def test_no_tap_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos import cli
    from chaos.proxy.embedded import __main__ as embedded_main

    assert embedded_main._parser().parse_args(["--no-tap"]).tap is False
    assert embedded_main._parser().parse_args([]).tap is None  # None: the env decides
    seen: list[list[str]] = []
    monkeypatch.setattr(embedded_main, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["toxiproxy", "serve", "--no-tap", "--port", "0"]) == 0
    assert "--no-tap" in seen[0]


def test_bodies_the_tap_does_not_need_still_go_by_splice(
        replay: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.proxy.embedded import endpoint

    if not endpoint.SPLICE:
        pytest.skip("splice is Linux-only")
    moved = [0]
    real = endpoint._splice
    assert real is not None

    def counting(*args: Any, **kwargs: Any) -> int:
        count: int = real(*args, **kwargs)
        moved[0] += count
        return count

    monkeypatch.setattr(endpoint, "_splice", counting)
    items = [Exchange("PUT", RID, "length", False, 200, "length", 0, 1_600_000),
             Exchange("GET", "c" * 32, "none", False, 200, "length", 0, 10)]  # framing after it
    _same(_replay(replay, items, 3, False), items)
    bodies = 1_600_000 + 5 * 1_600_000
    assert moved[0] / 2 >= 0.9 * bodies, f"only {moved[0] / 2:.0f} of {bodies} bytes spliced"
