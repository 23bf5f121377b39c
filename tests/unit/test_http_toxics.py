"""HTTP- and stream-aware toxics through the embedded server (real sockets on 127.0.0.1).

The upstream echoes each request's raw bytes (head and body) as its response body, so
a test sees exactly what reached it; ``/sse`` answers a chunked event stream of 5 events.
"""

from __future__ import annotations

import socket
import socketserver
import time
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.embedded import proxy_fixtures

LOOPBACK = "127.0.0.1"
EVENTS = 5


def _read_message(f: Any) -> tuple[bytes, bytes] | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline(65536)
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = f.read(length) if length else b""
    return head, body


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for _ in range(1000):
            message = _read_message(self.rfile)
            if message is None:
                return
            head, body = message
            if head.startswith(b"GET /sse "):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(EVENTS):
                    event = b'data: {"n": %d}\n\n' % i
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                    time.sleep(0.01)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                continue
            if head.startswith(b"GET /sse-length"):  # the same stream, framed by its length
                stream = b"".join(b'data: {"n": %d}\n\n' % i for i in range(EVENTS))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(stream), stream))
                self.wfile.flush()
                continue
            raw = head + body
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw))
            self.wfile.flush()


upstream, api, proxy = proxy_fixtures(_Echo)


def _toxic(proxy: dict[str, Any], kind: str, **attributes: Any) -> requests.Response:
    return requests.post(f"{proxy['api']}/toxics", json={
        "type": kind, "attributes": attributes}, timeout=5)


def _request(path: str = "/a", method: str = "GET", body: bytes = b"",
             headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: upstream"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _connect(proxy: dict[str, Any]) -> tuple[socket.socket, Any]:
    sock = socket.create_connection((LOOPBACK, proxy["port"]), timeout=5)
    return sock, sock.makefile("rb")


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def test_http_abort_first_n_then_forward_on_the_same_connection(proxy: dict[str, Any]) -> None:
    made = _toxic(proxy, "http_abort", status=503, first=2, body='{"error": "busy"}',
                  headers={"Retry-After": 2})
    assert made.status_code == 200, made.text
    sock, f = _connect(proxy)
    seen = []
    for i in range(4):
        sock.sendall(_request(f"/r{i}"))
        message = _read_message(f)
        assert message is not None
        seen.append(message)
    assert [_status(h) for h, _ in seen] == [503, 503, 200, 200]
    assert b"Retry-After: 2" in seen[0][0] and seen[0][1] == b'{"error": "busy"}'
    assert seen[2][1] == _request("/r2") and seen[3][1] == _request("/r3")
    sock.close()


def test_http_abort_match_leaves_unmatched_requests_alone(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "http_abort", status=429,
                  match={"method": "POST", "path": "/v1/", "header": {"X-Tenant": "a"}}
                  ).status_code == 200
    sock, f = _connect(proxy)
    hit = _request("/v1/chat", "POST", b"{}", {"X-Tenant": "a"})
    misses = [_request("/v1/chat", "POST", b"{}", {"X-Tenant": "b"}),
              _request("/v1/chat", "GET", headers={"X-Tenant": "a"}),
              _request("/v2/chat", "POST", b"{}", {"X-Tenant": "a"})]
    sock.sendall(hit)
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 429
    for miss in misses:
        sock.sendall(miss)
        message = _read_message(f)
        assert message is not None and _status(message[0]) == 200 and message[1] == miss
    sock.close()


def test_bad_attributes_are_400(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "http_abort", status=42).status_code == 400
    assert _toxic(proxy, "http_reset", at="later").status_code == 400
    assert _toxic(proxy, "sse_cut", after=-1).status_code == 400
    assert _toxic(proxy, "http_abort", match={"verb": "GET"}).status_code == 400
    assert _toxic(proxy, "http_abort", stauts=500).status_code == 400


def test_update_and_delete_through_the_toxic_api(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "http_abort", status=500).status_code == 200
    url = f"{proxy['api']}/toxics/http_abort_downstream"
    updated = requests.post(url, json={"attributes": {"status": 502}}, timeout=5)
    assert updated.status_code == 200 and updated.json()["attributes"]["status"] == 502
    sock, f = _connect(proxy)
    sock.sendall(_request())
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 502
    assert requests.delete(url, timeout=5).status_code == 204
    sock.sendall(_request())
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 200
    sock.close()


@pytest.mark.parametrize("at", ["request", "response"])
def test_http_reset(proxy: dict[str, Any], at: str) -> None:
    assert _toxic(proxy, "http_reset", at=at).status_code == 200
    sock, f = _connect(proxy)
    sock.sendall(_request())
    data = b""
    with pytest.raises(ConnectionResetError):
        for _ in range(100):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") if at == "response" else data == b""
    sock.close()


@pytest.mark.parametrize("at", ["request", "response"])
def test_http_latency_delays_each_request(proxy: dict[str, Any], at: str) -> None:
    assert _toxic(proxy, "http_latency", latency=150, at=at,
                  match={"path": "/slow"}).status_code == 200
    sock, f = _connect(proxy)
    for path, low, high in (("/slow", 0.14, 1.0), ("/fast", 0.0, 0.1), ("/slow", 0.14, 1.0)):
        started = time.monotonic()
        sock.sendall(_request(path))
        message = _read_message(f)
        took = time.monotonic() - started
        assert message is not None and message[1] == _request(path)
        assert low <= took <= high, (path, took)
    sock.close()


def _sse(proxy: dict[str, Any], path: str = "/sse") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((LOOPBACK, proxy["port"]), timeout=2)
    sock.sendall(_request(path))
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if data.endswith(b"0\r\n\r\n"):
                break
    except TimeoutError:
        pass
    return sock, data


def _events(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line.startswith(b"data:")]


def test_sse_stall_keeps_the_connection_open(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "sse_stall", after=0).status_code == 200
    sock, data = _sse(proxy)
    assert data.startswith(b"HTTP/1.1 200") and _events(data) == []
    sock.sendall(b"")  # still open: no reset, no FIN
    sock.close()


def test_sse_cut_after_two_events(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "sse_cut", after=2).status_code == 200
    sock, data = _sse(proxy)
    assert len(_events(data)) == 2 and not data.endswith(b"0\r\n\r\n")
    sock.close()


def test_sse_corrupt_inserts_a_malformed_event(proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "sse_corrupt", after=1).status_code == 200
    sock, data = _sse(proxy)
    events = _events(data)
    assert len(events) == EVENTS + 1 and data.endswith(b"0\r\n\r\n")
    assert events[1].startswith(b'data: {"choices"') and not events[1].endswith(b"}")
    sock.close()


def test_sse_error_ends_the_stream_and_the_connection_stays_usable(
        proxy: dict[str, Any]) -> None:
    assert _toxic(proxy, "sse_error", after=3, match={"path": "/sse"}).status_code == 200
    sock, data = _sse(proxy)
    events = _events(data)
    assert len(events) == 4 and b'"error"' in events[3] and data.endswith(b"0\r\n\r\n")
    time.sleep(0.2)  # the upstream's remaining events are dropped, in sync
    sock.sendall(_request("/after"))
    f = sock.makefile("rb")
    message = _read_message(f)
    assert message is not None and message[1] == _request("/after")
    sock.close()


def test_sse_error_on_a_content_length_stream_is_rechunked_and_in_sync(
        proxy: dict[str, Any]) -> None:
    """The inserted error event makes the upstream's Content-Length wrong: the head loses
    it and the body goes out chunked, ending at the error; the connection stays usable."""
    assert _toxic(proxy, "sse_error", after=2).status_code == 200
    sock, data = _sse(proxy, "/sse-length")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head, head
    events = _events(data)
    assert events[:2] == [b'data: {"n": 0}', b'data: {"n": 1}'], events
    assert len(events) == 3 and b'"error"' in events[2] and body.endswith(b"0\r\n\r\n")
    sock.sendall(_request("/after"))
    message = _read_message(sock.makefile("rb"))
    assert message is not None and message[1] == _request("/after")
    sock.close()


def test_sse_corrupt_on_a_content_length_stream_to_http10_is_close_delimited(
        proxy: dict[str, Any]) -> None:
    """No chunked answer to an HTTP/1.0 request: the longer body ends at the close."""
    assert _toxic(proxy, "sse_corrupt", after=1).status_code == 200
    sock = socket.create_connection((LOOPBACK, proxy["port"]), timeout=2)
    sock.sendall(b"GET /sse-length HTTP/1.0\r\nHost: upstream\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):  # EOF: the body's end
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"Content-Length" not in head, head
    assert b"chunked" not in head
    stream = b"".join(b'data: {"n": %d}\n\n' % i for i in range(EVENTS))
    first = len(b'data: {"n": 0}\n\n')
    assert body == stream[:first] + b'data: {"choices": [{"delta": {"content": "\n\n' + stream[first:]
    sock.close()


_requests = st.lists(st.tuples(
    st.sampled_from(["GET", "POST"]),
    st.from_regex(r"/[a-z0-9]{0,12}", fullmatch=True),
    st.binary(max_size=300),
    st.booleans()), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=_requests, pipelined=st.booleans())
def test_property_unaffected_bytes_identical_and_in_order(
        proxy: dict[str, Any], batch: list[tuple[str, str, bytes, bool]], pipelined: bool) -> None:
    requests.post(f"{proxy['api']}/toxics", json={
        "name": "abort", "type": "http_abort", "attributes": {
            "status": 503, "match": {"header": {"X-Hit": "1"}}}}, timeout=5)
    requests.post(f"{proxy['api']}/toxics", json={
        "name": "slow", "type": "http_latency", "attributes": {
            "latency": 5, "match": {"header": {"X-Slow": "1"}}}}, timeout=5)
    try:
        sent = [_request(path, method, body if method == "POST" else b"",
                         {"X-Hit": "1"} if hit else {"X-Slow": "1"})
                for method, path, body, hit in batch]
        sock, f = _connect(proxy)
        if pipelined:
            sock.sendall(b"".join(sent))
        for i, raw in enumerate(sent):
            if not pipelined:
                sock.sendall(raw)
            message = _read_message(f)
            assert message is not None
            if batch[i][3]:
                assert _status(message[0]) == 503
            else:
                assert _status(message[0]) == 200 and message[1] == raw
        sock.close()
    finally:
        for name in ("abort", "slow"):
            requests.delete(f"{proxy['api']}/toxics/{name}", timeout=5)


def test_a_toxic_added_to_an_open_keep_alive_connection_applies_from_the_next_request(
        proxy: dict[str, Any]) -> None:
    """A gateway's pooled connection, opened before the fault window, still meets it."""
    sock, f = _connect(proxy)
    sock.sendall(_request("/before"))
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 200
    time.sleep(0.05)  # the tap has seen the response's end
    assert _toxic(proxy, "http_abort", status=503).status_code == 200
    sock.sendall(_request("/during"))
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 503
    requests.delete(f"{proxy['api']}/toxics/http_abort_downstream", timeout=5)
    sock.sendall(_request("/after"))
    message = _read_message(f)
    assert message is not None and message[1] == _request("/after")
    sock.close()


def test_a_toxic_added_while_a_stream_is_in_flight_applies_from_the_next_request(
        proxy: dict[str, Any]) -> None:
    """A pooled connection busy with a chunked event stream when the fault window opens
    (a gateway under load) meets the toxic on its next request, not never."""
    sock = socket.create_connection((LOOPBACK, proxy["port"]), timeout=2)
    sock.sendall(_request("/sse"))
    data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200") and not data.endswith(b"0\r\n\r\n")
    assert _toxic(proxy, "sse_stall", after=0).status_code == 200
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    assert len(_events(data)) == EVENTS  # the stream in flight is left alone
    sock.sendall(_request("/sse"))
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    assert data.startswith(b"HTTP/1.1 200") and _events(data) == []  # stalled
    sock.close()


@pytest.mark.parametrize("first", [b"GARBAGE\r\n\r\n", b"GET /a HTTP/1.1\r\nbad header\r\n\r\n"],
                         ids=["not-http", "bad-header"])
def test_bytes_the_gate_cannot_parse_pass_at_once(proxy: dict[str, Any], first: bytes) -> None:
    """A head the gate cannot read turns it off for the connection: the bytes it held go
    on in the same read, not when (if ever) the client sends more."""
    assert _toxic(proxy, "http_abort", match={"path": "/never"}).status_code == 200
    sock, f = _connect(proxy)
    sock.sendall(first)
    message = _read_message(f)
    assert message is not None and _status(message[0]) == 200 and message[1] == first
    sock.close()
