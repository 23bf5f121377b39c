"""An incremental HTTP/1.1 framing reader for one direction of a tapped connection.

It only watches: it is fed the bytes a pipe read (any split), or told that ``n``
bytes it did not need went by (``skip``, the splice path), and never changes,
holds or delays a byte. ``opaque()`` says how many of the next bytes are body
bytes it has no use for, so that the pipe may move them with ``splice``; framing
(heads, chunk-size lines, trailers) always comes through ``feed``.

What a head means (body length, SSE, request id) is decided by its owner
(``chaos/proxy/embedded/tap.py``) through the ``head`` callback; this module
knows the syntax only. Anything it cannot parse raises ``ParseError`` inside
``feed`` and turns the reader off: a tap must never break the traffic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

INF = 1 << 62  # "every byte from here on" for opaque()
MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
METHOD_MAX = 32  # a request line's first space comes within this many bytes, or it is not HTTP

HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILER, UNTIL_CLOSE, DEAD = range(8)

# What the owner answers for a head: how its body is framed.
NO_BODY, LENGTH, CHUNKED, UNTIL_EOF, INTERIM, TUNNEL = range(6)

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        b"abcdefghijklmnopqrstuvwxyz")
HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


class ParseError(ValueError):
    """The bytes are not HTTP/1.x as this reader understands it."""


@dataclass
class Head:
    """A parsed request or response head; header names lower-case, values stripped."""

    method: bytes = b""
    target: bytes = b""
    status: int = 0
    version: bytes = b""  # HTTP/1.1 | HTTP/1.0
    headers: dict[bytes, bytes] = field(default_factory=dict)


Framing = tuple[int, int, bool]  # (NO_BODY | LENGTH | ..., length, copy: body bytes wanted)
Start = Callable[[float], None]
HeadFn = Callable[[Head, float], Framing]
Done = Callable[[float], None]
BodyFn = Callable[[bytes], None]


def parse_head(raw: bytes, response: bool) -> Head:
    lines = raw.split(b"\n")
    first = lines[0].rstrip(b"\r")
    parts = first.split(b" ", 2)
    head = Head()
    if response:
        if len(parts) < 2 or parts[0] not in VERSIONS or len(parts[1]) != 3 \
                or not parts[1].isdigit():
            raise ParseError(f"bad status line {first[:80]!r}")
        head.status = int(parts[1])
        head.version = parts[0]
    else:
        if len(parts) != 3 or parts[2] not in VERSIONS or not TOKEN.fullmatch(parts[0]) \
                or not parts[1] or b"\t" in parts[1]:
            raise ParseError(f"bad request line {first[:80]!r}")
        head.method, head.target, head.version = parts[0], parts[1], parts[2]
    headers = head.headers
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name[0] in b" \t" or name[-1] in b" \t":
            raise ParseError(f"bad header line {line[:80]!r}")
        key = name.lower()
        value = value.strip(b" \t")
        old = headers.get(key)
        if old is None:
            headers[key] = value
        elif key == b"content-length":
            if old != value:
                raise ParseError("conflicting Content-Length headers")
        else:
            headers[key] = old + b", " + value
    return head


def content_length(head: Head) -> int:
    """The head's Content-Length, -1 when it has none; ``ParseError`` when not a number."""
    value = head.headers.get(b"content-length")
    if value is None:
        return -1
    if not value.isdigit():
        raise ParseError(f"bad Content-Length {value[:40]!r}")
    return int(value)


def is_chunked(head: Head) -> bool | None:
    """True: chunked; False: another transfer coding; None: no Transfer-Encoding."""
    value = head.headers.get(b"transfer-encoding")
    if value is None:
        return None
    return value.lower().rstrip(b" \t").endswith(b"chunked")


def body_framing(head: Head, method: bytes | None) -> tuple[int, int]:
    """How the body after ``head`` is framed, as RFC 9112 section 6.3 has it: (NO_BODY |
    LENGTH | CHUNKED | UNTIL_EOF | INTERIM | TUNNEL, length). ``method``: for a response,
    the method of the request it answers; None for a request. ``ParseError`` for what
    cannot be framed (a bad Content-Length, a request's transfer coding not chunked)."""
    if method is None:
        length = content_length(head)
        chunked = is_chunked(head)
        if chunked is False:
            raise ParseError("request with a transfer coding other than chunked")
        if chunked:
            return CHUNKED, 0
        return (LENGTH, length) if length > 0 else (NO_BODY, 0)
    status = head.status
    if status == 101 or (method == b"CONNECT" and 200 <= status < 300):
        return TUNNEL, 0
    if status < 200:
        return INTERIM, 0
    if method == b"HEAD" or status in (204, 304):
        return NO_BODY, 0
    chunked = is_chunked(head)
    if chunked is not None:
        return (CHUNKED if chunked else UNTIL_EOF), 0
    length = content_length(head)
    return (LENGTH, length) if length >= 0 else (UNTIL_EOF, 0)


def head_end(buf: bytes | bytearray, start: int) -> int:
    """Index just past the blank line ending the head in ``buf``, or -1."""
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if crlf < 0:
        return -1 if lf < 0 else lf + 2
    if lf < 0 or crlf + 2 <= lf:
        return crlf + 4
    return lf + 2


class Reader:
    """Framing of one direction: heads, Content-Length, chunked or close-delimited bodies."""

    def __init__(self, response: bool, start: Start, head: HeadFn, done: Done, body: BodyFn,
                 broken: Callable[[], None]) -> None:
        self.response = response
        self._start, self._head_cb, self._done_cb, self._body = start, head, done, body
        self._broken = broken
        self.state = HEAD
        self.remaining = 0
        self.copy = False  # the owner wants this body's bytes (SSE, request id field)
        self.started = False  # the current message's first byte was seen
        self.buf = bytearray()
        self.scanned = 0

    # --- what the pipe calls ------------------------------------------------------------------
    def opaque(self) -> int:
        """How many of the next bytes may pass without being fed (0: feed them)."""
        state = self.state
        if state == DEAD:
            return INF
        if self.copy:
            return 0
        if state in (BODY, CHUNK_DATA):
            return self.remaining
        return INF if state == UNTIL_CLOSE else 0

    def skip(self, count: int, now: float) -> None:
        """``count`` opaque bytes went by without being fed."""
        if self.state == DEAD or self.state == UNTIL_CLOSE:
            return
        self.remaining -= count
        if self.remaining <= 0:
            self._body_end(now)

    def feed(self, data: bytes, now: float) -> None:
        if self.state == DEAD or not data:
            return
        try:
            self._feed(data, now)
        except (ParseError, ValueError, UnicodeError) as exc:
            self.stop()
            self._broken()
            del exc

    def stop(self) -> None:
        self.state = DEAD
        self.copy = False
        self.buf = bytearray()

    # --- parsing ------------------------------------------------------------------------------
    def _feed(self, data: bytes, now: float) -> None:
        pos, end = 0, len(data)
        while pos < end:
            state = self.state
            if state == HEAD:
                pos = self._head(data, pos, now)
            elif state in (BODY, CHUNK_DATA):
                take = min(self.remaining, end - pos)
                if self.copy:
                    self._body(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self._body_end(now)
            elif state == UNTIL_CLOSE:
                if self.copy:
                    self._body(data[pos:] if pos else data)
                return
            elif state == DEAD:
                return
            else:
                pos = self._line(data, pos, now)

    def _body_end(self, now: float) -> None:
        if self.state == CHUNK_DATA:
            self.state = CHUNK_END
        else:
            self._message_done(now)

    def _message_done(self, now: float) -> None:
        self.state = HEAD
        self.copy = False
        self.started = False
        self._done_cb(now)

    def _head(self, data: bytes, pos: int, now: float) -> int:
        buf = self.buf
        if not self.started:
            while pos < len(data) and data[pos] in b"\r\n":  # blank lines between messages
                pos += 1
            if pos == len(data):
                return pos
            self.started = True
            self._start(now)
            if self.state == DEAD:
                return len(data)
        if not buf:  # the common case: the whole head in this one read
            stop = head_end(data, pos)
            if stop >= 0:
                raw = data[pos:stop]
                self._check_prefix(raw)
                self._framing(parse_head(raw, self.response), now)
                return stop
        buf += data[pos:] if pos else data
        stop = head_end(buf, max(0, self.scanned - 3))
        if stop < 0:
            self._check_prefix(buf)
            self.scanned = len(buf)
            return len(data)
        leftover = len(buf) - stop
        raw = bytes(buf[:stop])
        self.buf = bytearray()
        self.scanned = 0
        self._check_prefix(raw)
        self._framing(parse_head(raw, self.response), now)
        return len(data) - leftover

    def _check_prefix(self, buf: bytes | bytearray) -> None:
        """Fail early on bytes that cannot start an HTTP/1 message."""
        if len(buf) > MAX_HEAD:
            raise ParseError("head too long")
        if self.response:
            size = min(len(buf), 5)
            if buf[:size] != b"HTTP/"[:size]:
                raise ParseError("not an HTTP response")
            return
        if buf[0] not in TOKEN_CHARS:
            raise ParseError("not an HTTP request")
        if buf.find(b" ", 0, METHOD_MAX + 1) < 0 and len(buf) > METHOD_MAX:
            raise ParseError("no method")

    def _framing(self, head: Head, now: float) -> None:
        mode, length, copy = self._head_cb(head, now)
        if self.state == DEAD:  # the owner stopped tapping (a tunnel, an unmatched response)
            return
        self.copy = copy
        if mode == LENGTH and length > 0:
            self.state, self.remaining = BODY, length
        elif mode == CHUNKED:
            self.state = CHUNK_SIZE
        elif mode == UNTIL_EOF:
            self.state = UNTIL_CLOSE
        elif mode == INTERIM:  # 1xx: the final response follows, same message
            self.state = HEAD
            self.copy = False
            self.started = False
        else:
            self._message_done(now)

    def _line(self, data: bytes, pos: int, now: float) -> int:
        """One line of chunked framing: a chunk size, the CRLF after data, a trailer."""
        stop = data.find(b"\n", pos)
        if stop < 0:
            self.buf += data[pos:]
            if len(self.buf) > MAX_LINE:
                raise ParseError("chunk line too long")
            return len(data)
        line = bytes(self.buf + data[pos:stop]) if self.buf else data[pos:stop]
        self.buf = bytearray()
        line = line.rstrip(b"\r")
        state = self.state
        if state == CHUNK_SIZE:
            size = line.split(b";", 1)[0].strip(b" \t")
            if not HEX.fullmatch(size):
                raise ParseError(f"bad chunk size {line[:40]!r}")
            self.remaining = int(size, 16)
            self.state = CHUNK_DATA if self.remaining else TRAILER
        elif state == CHUNK_END:
            if line:
                raise ParseError("no CRLF after chunk data")
            self.state = CHUNK_SIZE
        elif not line:  # TRAILER: the blank line ends the message
            self._message_done(now)
        return stop + 1
