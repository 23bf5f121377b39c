"""The HTTP/1.1 tap's parser: any split of the same bytes gives the same attempts.

Streams are built from random exchanges (Content-Length and chunked request
bodies, 1xx interim responses, HEAD and 204/304 without a body, chunked and SSE
responses, a close-delimited last response) with the attempts they must give.
They are then fed in random pieces, and the bytes the tap says it does not need
are skipped rather than fed, as the splice path does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.proxy.embedded.attempts import AttemptRing, TapSettings
from chaos.proxy.embedded.http1 import INF
from chaos.proxy.embedded.tap import ConnTap, refused

TIMES = ("t", "first_byte", "end")


@dataclass
class Exchange:
    method: str
    rid: str | None
    req_body: str  # none | length | chunked
    interim: bool
    status: int
    resp_body: str  # length | chunked | sse | close
    events: int
    size: int


def _chunks(body: bytes, rng: random.Random) -> bytes:
    out, pos = b"", 0
    while pos < len(body):
        step = rng.randint(1, max(1, len(body) - pos))
        out += b"%x;ext=1\r\n" % step + body[pos:pos + step] + b"\r\n"
        pos += step
    return out + b"0\r\nTrailer: x\r\n\r\n"


def _request(ex: Exchange, index: int, rng: random.Random) -> bytes:
    head = f"{ex.method} /r/{index}?q=1 HTTP/1.1\r\nHost: upstream\r\n"
    if ex.rid:
        head += f"x-chaos-request-id: {ex.rid}\r\n"
    body = rng.randbytes(ex.size)
    if ex.req_body == "length":
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if ex.req_body == "chunked":
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + _chunks(body, rng)
    return (head + "\r\n").encode()


def _response(ex: Exchange, rng: random.Random) -> bytes:
    out = b"HTTP/1.1 100 Continue\r\n\r\n" if ex.interim else b""
    head = f"HTTP/1.1 {ex.status} Whatever\r\nRetry-After: 2\r\n"
    if ex.method == "HEAD" or ex.status in (204, 304):  # no body, whatever the head says
        kind = "Content-Type: text/event-stream\r\n" if ex.resp_body == "sse" else ""
        return out + (head + kind + f"Content-Length: {ex.size + 7}\r\n\r\n").encode()
    if ex.resp_body == "sse":
        body = b"".join(b"event: e\r\ndata: %d\r\n\r\n" % i for i in range(ex.events))
        return out + (head + "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked"
                      "\r\n\r\n").encode() + _chunks(body, rng)
    body = b"x\r\n\r\n" * ex.size
    if ex.resp_body == "chunked":
        return out + (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + _chunks(body, rng)
    if ex.resp_body == "close":
        return out + (head + "\r\n").encode() + body
    return out + (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _expected(ex: Exchange, index: int) -> dict[str, Any]:
    return {"seq": index + 1, "conn": "p#1", "rid": ex.rid, "method": ex.method,
            "path": f"/r/{index}?q=1", "status": ex.status, "ended": "complete",
            "retry_after": "2", "events": ex.events if ex.resp_body == "sse" and ex.method !=
            "HEAD" and ex.status not in (204, 304) else None}


exchanges = st.builds(
    Exchange,
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    rid=st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32)),
    req_body=st.sampled_from(["none", "length", "chunked"]),
    interim=st.booleans(),
    status=st.sampled_from([200, 201, 204, 304, 429, 500, 503]),
    resp_body=st.sampled_from(["length", "chunked", "sse"]),
    events=st.integers(0, 5),
    size=st.integers(0, 300),
)


def _feed(reader: Any, data: bytes, rng: random.Random, splice: bool) -> None:
    """Feed ``data`` in random pieces; with ``splice`` skip what the reader calls opaque."""
    pos = 0
    while pos < len(data):
        opaque = reader.opaque() if splice else 0
        if opaque and opaque < INF:
            step = min(opaque, rng.randint(1, 4096), len(data) - pos)
            reader.skip(step, 1.0)
        else:
            step = rng.randint(1, 64)
            reader.feed(data[pos:pos + step], 1.0)
        pos += step


def _strip(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k not in TIMES} for a in page["attempts"]]


def _run(streams: tuple[bytes, bytes], seed: int, splice: bool) -> dict[str, Any]:
    ring = AttemptRing()
    tap = ConnTap("p#1", ring)
    rng = random.Random(seed)
    _feed(tap.up, streams[0], rng, splice)
    _feed(tap.down, streams[1], rng, splice)
    tap.upstream_eof(2.0)
    tap.finish(3.0)
    return ring.page(0, 1000, True)


def _build(items: list[Exchange], seed: int, close_last: bool) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    if close_last and items and items[-1].method != "HEAD" and items[-1].status not in (204, 304):
        items[-1].resp_body = "close"
    requests = b"".join(_request(ex, i, rng) for i, ex in enumerate(items))
    responses = b"".join(_response(ex, rng) for ex in items)
    return requests, responses


@settings(max_examples=150, deadline=None)
@given(st.lists(exchanges, min_size=1, max_size=6), st.integers(0, 2**32),
       st.integers(0, 2**32), st.booleans())
def test_any_split_gives_the_same_attempts(items: list[Exchange], seed: int, split: int,
                                           close_last: bool) -> None:
    streams = _build(items, seed, close_last)
    whole = ConnTap("p#1", AttemptRing())
    whole.up.feed(streams[0], 1.0)
    whole.down.feed(streams[1], 1.0)
    whole.upstream_eof(2.0)
    whole.finish(3.0)
    expected = [_expected(ex, i) for i, ex in enumerate(items)]
    assert _strip(whole.ring.page(0, 1000, True)) == expected
    for splice in (False, True):
        page = _run(streams, split, splice)
        assert _strip(page) == expected, f"splice={splice}"
        assert page["connections"] == {"http": 1, "tls": 0, "unknown": 0}


@settings(max_examples=50, deadline=None)
@given(st.lists(exchanges, min_size=2, max_size=6), st.integers(0, 2**32))
def test_pipelined_requests_are_matched_in_order(items: list[Exchange], seed: int) -> None:
    for ex in items:
        ex.status = 200 if ex.status == 204 else ex.status
    requests, responses = _build(items, seed, False)
    ring = AttemptRing()
    tap = ConnTap("p#1", ring)
    tap.up.feed(requests, 1.0)  # every request before any response
    assert len(tap.pending) == len(items)
    tap.down.feed(responses, 2.0)
    page = ring.page(0, 1000)
    assert [a["path"] for a in page["attempts"]] == [f"/r/{i}?q=1" for i in range(len(items))]
    assert [a["status"] for a in page["attempts"]] == [ex.status for ex in items]


def test_times_are_those_of_the_reads_that_saw_the_bytes() -> None:
    ring = AttemptRing()
    tap = ConnTap("p#1", ring)
    tap.up.feed(b"GET / HTTP/1.1\r\n", 10.0)
    tap.up.feed(b"\r\n", 11.0)
    tap.down.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 12.0)
    assert tap.down.opaque() == 2
    tap.down.skip(2, 13.0)
    [attempt] = ring.page(0, 10)["attempts"]
    assert (attempt["t"], attempt["first_byte"], attempt["end"]) == (10.0, 12.0, 13.0)


def test_an_unfinished_response_ends_as_the_connection_did() -> None:
    ring = AttemptRing()
    tap = ConnTap("p#1", ring)
    tap.up.feed(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1.0)
    tap.down.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n", 2.0)
    assert ring.page(0, 10, True)["attempts"][-1]["ended"] == "open"
    tap.gateway_eof(3.0)
    tap.finish(4.0)
    ended = [(a["path"], a["ended"], a["end"]) for a in ring.page(0, 10)["attempts"]]
    assert ended == [("/a", "complete", 2.0), ("/b", "gateway_fin", 3.0)]


def test_tls_and_garbage_are_counted_and_not_parsed() -> None:
    ring = AttemptRing()
    for data in (b"\x16\x03\x01\x02\x00\x01", b"\x00\x01binary", b"S" + b"x" * 100,
                 b"GET / HTTP/9.9\r\n\r\n"):
        tap = ConnTap("p#1", ring)
        tap.up.feed(data, 1.0)
        assert tap.up.opaque() == INF and tap.down.opaque() == INF
        tap.finish(2.0)
    assert ring.connections == {"http": 0, "tls": 1, "unknown": 3}
    assert ring.page(0, 10, True)["attempts"] == []  # no HTTP request: no attempt


def test_a_parse_error_later_stops_the_tap_and_counts_unknown() -> None:
    ring = AttemptRing()
    tap = ConnTap("p#1", ring)
    tap.up.feed(b"GET / HTTP/1.1\r\n\r\n", 1.0)
    assert ring.connections["http"] == 1
    tap.down.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 2.0)
    assert ring.connections == {"http": 0, "tls": 0, "unknown": 1}
    assert tap.up.opaque() == INF and tap.down.opaque() == INF


def test_request_id_from_a_json_body_field() -> None:
    ring = AttemptRing()
    ring.settings = TapSettings("X-Other", "metadata.chaos_id")
    tap = ConnTap("p#1", ring)
    body = b'{"model": "m", "metadata": {"chaos_id": "r1"}}'
    tap.up.feed(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body), 1.0)
    assert tap.up.opaque() == 0  # the body is wanted: it comes through feed
    tap.up.feed(body, 1.0)
    tap.down.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2.0)
    assert ring.page(0, 10)["attempts"][0]["rid"] == "r1"


def test_refused_reads_the_peeked_head() -> None:
    ring = AttemptRing()
    refused("p#3", ring, b"POST /v1 HTTP/1.1\r\nX-Chaos-Request-Id: abc\r\nContent-Le", 5.0)
    refused("p#4", ring, b"", 6.0)
    got = [(a["conn"], a["rid"], a["method"], a["ended"]) for a in ring.page(0, 10)["attempts"]]
    assert got == [("p#3", "abc", "POST", "refused"), ("p#4", None, None, "refused")]


def test_the_ring_keeps_the_last_records_and_counts_the_dropped() -> None:
    ring = AttemptRing(size=3)
    for i in range(5):
        tap = ConnTap(f"p#{i}", ring)
        tap.up.feed(b"GET / HTTP/1.1\r\n\r\n", 1.0)
        tap.down.feed(b"HTTP/1.1 204 No\r\n\r\n", 1.0)
    page = ring.page(0, 2)
    assert [a["seq"] for a in page["attempts"]] == [3, 4] and page["next"] == 4
    assert page["dropped"] == 2
    assert [a["seq"] for a in ring.page(4, 10)["attempts"]] == [5]
    assert ring.page(5, 10)["attempts"] == [] and ring.page(5, 10)["next"] == 5
