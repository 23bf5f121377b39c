"""Property tests of the stream toxics through the embedded server (real sockets on 127.0.0.1).

For ``sse_stall``, ``sse_cut``, ``sse_corrupt`` and ``sse_error`` with a random ``after``
(N) and random event streams, framed chunked, by ``Content-Length`` or by the close
(HTTP/1.0 style), cut at random places into HTTP chunks and into TCP writes: the client
gets the first N events byte for byte, then the fault, in a body it can still parse
(``http_toxics.reframed``: a ``Content-Length`` body taken over is chunked, or
close-delimited for HTTP/1.0); a stream the toxic does not match is byte-identical on
the wire, head and framing included.
"""

from __future__ import annotations

import itertools
import json
import socket
import socketserver
import time
from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.proxy.embedded.sse_toxics import EventEnds
from tests.fixtures.embedded import proxy_fixtures

LOOPBACK = "127.0.0.1"
REPLAY: dict[str, tuple[list[bytes], bool]] = {}  # path -> (writes, close after them)
KEYS = itertools.count()
STALL_WAIT = 0.3  # s: a stalled stream sends nothing more within this


class _Replay(socketserver.StreamRequestHandler):
    """``GET /s/...``: the registered writes, one ``sendall`` each; anything else: 200 "ok"."""

    def handle(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline(65536)
                if not line:
                    return
                head += line
            path = head.split(b" ", 2)[1].decode()
            if path not in REPLAY:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                continue
            writes, close = REPLAY.pop(path)
            for data in writes:
                self.wfile.write(data)
                time.sleep(0.001)
            if close:
                return


upstream, api, proxy = proxy_fixtures(_Replay)


# --- the client side: a raw socket reader -------------------------------------------------------
class _Wire:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf, self.eof = sock, b"", False

    def fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def until(self, sep: bytes) -> bytes | None:
        while sep not in self.buf:
            if not self.fill():
                return None
        data, _, self.buf = self.buf.partition(sep)
        return data + sep

    def take(self, count: int) -> bytes | None:
        while len(self.buf) < count:
            if not self.fill():
                return None
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def rest(self) -> bytes:
        while self.fill():
            pass
        data, self.buf = self.buf, b""
        return data


def _response(wire: _Wire) -> tuple[bytes, bytes, bool]:
    """(head, decoded body so far, whether the body's end came as its framing says)."""
    head = wire.until(b"\r\n\r\n")
    assert head is not None, wire.buf
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            line = wire.until(b"\r\n")
            if line is None:
                return head, body, False
            size = int(line.strip(), 16)
            data = wire.take(size + 2)
            if data is None:
                return head, body + wire.buf[:size], False
            if size == 0:
                return head, body, True
            body += data[:size]
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        data = wire.take(length)
        return (head, data, True) if data is not None else (head, wire.rest(), False)
    body = wire.rest()
    return head, body, wire.eof


# --- the streams ----------------------------------------------------------------------------------
_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_line = st.tuples(st.sampled_from(["data", "event", "id", ""]), _text)
_events = st.lists(
    st.tuples(st.lists(_line, min_size=1, max_size=3), st.sampled_from(["\n", "\r\n"]), st.booleans()),
    max_size=6,
)


def _stream(events: list[tuple[list[tuple[str, str]], str, bool]]) -> tuple[bytes, list[int]]:
    """The body and where each event ends (just past its blank line)."""
    body, ends = "", []
    for lines, nl, extra_blank in events:
        for name, text in lines:
            body += (f"{name}: {text}" if name else f": {text}") + nl
        body += nl
        ends.append(len(body))
        if extra_blank:  # a blank line after a blank line ends no event
            body += nl
    return body.encode(), ends


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def _error_event() -> bytes:
    error = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    }
    return b"data: " + json.dumps(error).encode() + b"\n\n"


PAYLOAD = b'data: {"choices": [{"delta": {"content": "\n\n'  # sse_corrupt's default


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["sse_stall", "sse_cut", "sse_corrupt", "sse_error"]),
    events=_events,
    framing=st.sampled_from(["chunked", "length", "close"]),
    http10=st.booleans(),
    matched=st.booleans(),
    data=st.data(),
)
def test_property_first_n_events_identical_then_the_fault_in_a_parsable_body(
    proxy: dict[str, Any],
    kind: str,
    events: list[Any],
    framing: str,
    http10: bool,
    matched: bool,
    data: st.DataObject,
) -> None:
    body, ends = _stream(events)
    after = data.draw(st.integers(0, len(ends) + 1), label="after")
    if http10 and framing == "chunked":
        framing = "length"  # no chunked answer to an HTTP/1.0 request
    cuts = st.lists(st.integers(0, 1 << 16), max_size=6)
    pieces = _split(body, data.draw(cuts, label="chunks"))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    elif framing == "length":
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        framed = body
    else:
        head += b"Connection: close\r\n\r\n"
        framed = body
    wire = head + framed
    path = f"/s/{'hit' if matched else 'miss'}-{next(KEYS)}"
    REPLAY[path] = (_split(wire, data.draw(cuts, label="writes")), framing == "close")
    made = requests.post(
        f"{proxy['api']}/toxics",
        json={"name": "sse", "type": kind, "attributes": {"after": after, "match": {"path": "/s/hit"}}},
        timeout=5,
    )
    assert made.status_code == 200, made.text
    version = "HTTP/1.0" if http10 else "HTTP/1.1"
    fired = matched and after <= len(ends)
    sock = socket.create_connection(
        (LOOPBACK, proxy["port"]), timeout=STALL_WAIT if kind == "sse_stall" else 5
    )
    try:
        sock.sendall(f"GET {path} {version}\r\nHost: upstream\r\n\r\n".encode())
        reader = _Wire(sock)
        if not matched:  # byte-identical end to end
            got = b""
            while len(got) < len(wire) and reader.fill():
                got, reader.buf = got + reader.buf, b""
            assert got == wire
            return
        got_head, got_body, complete = _response(reader)
        out_chunked = framing == "chunked" or (framing == "length" and not http10)
        assert (b"transfer-encoding: chunked" in got_head.lower()) == out_chunked, got_head
        assert b"content-length" not in got_head.lower(), got_head  # the gate frames it
        prefix = body[: ends[after - 1]] if fired and after else b""
        if not fired:
            assert got_body == body and complete
        elif kind == "sse_stall":
            assert got_body == prefix and not complete and not reader.eof
        elif kind == "sse_cut":
            assert got_body == prefix and reader.eof
            assert not complete or not out_chunked  # close-delimited: a cut looks like the end
        elif kind == "sse_corrupt":
            assert got_body == prefix + PAYLOAD + body[len(prefix) :] and complete
        else:
            assert got_body == prefix + _error_event() and complete
        if fired and kind == "sse_error" and out_chunked:  # ended in sync: still usable
            sock.sendall(b"GET /next HTTP/1.1\r\nHost: upstream\r\n\r\n")
            assert reader.until(b"\r\n\r\nok") is not None
        elif not out_chunked and complete:
            assert reader.eof  # close-delimited: the connection ends with the body
    finally:
        sock.close()
        REPLAY.pop(path, None)
        requests.delete(f"{proxy['api']}/toxics/sse", timeout=5)


@given(events=_events, cuts=st.lists(st.integers(0, 1 << 16), max_size=8))
def test_property_event_ends_do_not_depend_on_the_split(events: list[Any], cuts: list[int]) -> None:
    """EventEnds (the toxics' and the tap's one rule) finds each event's end, however the
    body comes in pieces."""
    body, ends = _stream(events)
    split, found, offset = EventEnds(), [], 0
    for piece in _split(body, cuts):
        found += [offset + end for end in split.ends(piece)]
        offset += len(piece)
    assert found == ends
