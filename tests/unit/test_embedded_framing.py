"""One framing rule (RFC 9112 section 6.3) for the tap and the exchange gate: http1.body_framing."""

from __future__ import annotations

import pytest

from chaos.proxy.embedded.http1 import (
    CHUNKED,
    INTERIM,
    LENGTH,
    NO_BODY,
    TUNNEL,
    UNTIL_EOF,
    ParseError,
    body_framing,
    parse_head,
)


@pytest.mark.parametrize(("raw", "method", "framing"), [
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", None, (LENGTH, 5)),
    (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", None, (NO_BODY, 0)),
    (b"GET / HTTP/1.1\r\n\r\n", None, (NO_BODY, 0)),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", None, (CHUNKED, 0)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", b"GET", (LENGTH, 7)),
    (b"HTTP/1.1 200 OK\r\n\r\n", b"GET", (UNTIL_EOF, 0)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \r\nContent-Length: 7\r\n\r\n", b"GET",
     (CHUNKED, 0)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 7\r\n\r\n", b"GET",
     (UNTIL_EOF, 0)),  # a transfer coding that is not chunked last: until the close
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", b"HEAD", (NO_BODY, 0)),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", b"GET", (NO_BODY, 0)),
    (b"HTTP/1.1 100 Continue\r\n\r\n", b"POST", (INTERIM, 0)),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", b"GET", (TUNNEL, 0)),
    (b"HTTP/1.1 200 OK\r\n\r\n", b"CONNECT", (TUNNEL, 0)),
    (b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n", b"CONNECT", (LENGTH, 0)),
])
def test_body_framing(raw: bytes, method: bytes | None, framing: tuple[int, int]) -> None:
    assert body_framing(parse_head(raw, method is not None), method) == framing


@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
])
def test_a_request_that_cannot_be_framed_is_a_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        body_framing(parse_head(raw, False), None)
