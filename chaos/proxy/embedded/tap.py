"""The HTTP/1.1 tap of one proxied connection: requests matched to responses, in order.

The upstream pipe (gateway -> proxy -> upstream) feeds ``up`` as it reads, the
downstream pipe feeds ``down`` as it writes to the gateway, after the toxics
(``chaos/proxy/embedded/http1.py`` readers): a response's first byte and end are
when the gateway got them. Pipelined and
keep-alive requests queue in ``pending`` and each response closes the oldest.
How a connection ended is told by ``link.py`` (``cause``) and given to every
attempt still open when it closes. The first bytes decide what the connection
is: a TLS ClientHello (0x16 0x03) or anything that is not an HTTP request is
counted and never parsed further; so is a connection whose HTTP breaks later.
"""

from __future__ import annotations

import json
from collections import deque

from chaos.proxy.embedded.attempts import Attempt, AttemptRing
from chaos.proxy.embedded.http1 import (
    INTERIM,
    LENGTH,
    NO_BODY,
    TUNNEL,
    UNTIL_CLOSE,
    Framing,
    Head,
    Reader,
    body_framing,
)
from chaos.proxy.embedded.sse_toxics import EventEnds

MAX_CAPTURE = 64 * 1024  # request bodies read for the request id field: JSON up to this size


def field_value(body: bytes, path: list[str]) -> str | None:
    try:
        node = json.loads(body)
    except (ValueError, RecursionError):
        return None
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, str) else str(node) if isinstance(node, int) else None


class ConnTap:
    """Both directions of one connection, and the attempts they make."""

    def __init__(self, conn: str, ring: AttemptRing) -> None:
        self.conn = conn
        self.ring = ring
        self.kind: str | None = None  # http | tls | unknown, once the first bytes said so
        self.pending: deque[Attempt] = deque()
        self.sending: Attempt | None = None  # whose request head/body is being read
        self.capture: bytearray | None = None
        self.cause: tuple[str, float] | None = None
        self.finished = False
        self.sse_events = EventEnds()  # the current response's, when it is an event stream
        self.up = Reader(False, self._req_start, self._req_head, self._req_done, self._req_body,
                         self.broken)
        self.down = Reader(True, self._resp_start, self._resp_head, self._resp_done,
                           self._resp_body, self.broken)
        self._first = self.up.feed
        self.up.feed = self._classify  # type: ignore[method-assign]

    # --- classification -------------------------------------------------------------------------
    def _classify(self, data: bytes, now: float) -> None:
        if not data:
            return
        self.up.feed = self._first  # type: ignore[method-assign]
        if data[0] == 0x16 and (len(data) < 2 or data[1] == 0x03):
            self._count("tls")
            self._stop()
            return
        self._first(data, now)

    def _count(self, kind: str) -> None:
        counts = self.ring.connections
        if self.kind is not None:
            counts[self.kind] -= 1
        self.kind = kind
        counts[kind] += 1

    def broken(self) -> None:
        """Not HTTP, or HTTP this tap cannot follow: count it, stop parsing."""
        if self.kind is None:  # never was HTTP: what looked like a request start was not one
            for attempt in self.pending:
                self.ring.open.pop(id(attempt), None)
            self.pending.clear()
        self._count("unknown")
        self._stop()

    def _stop(self) -> None:
        self.up.stop()
        self.down.stop()
        self.capture = None

    # --- requests -------------------------------------------------------------------------------
    def _req_start(self, now: float) -> None:
        attempt = Attempt(self.conn, now)
        self.sending = attempt
        self.pending.append(attempt)
        self.ring.begin(attempt)

    def _req_head(self, head: Head, now: float) -> Framing:
        attempt = self.sending
        assert attempt is not None
        if self.kind is None:
            self._count("http")
        attempt.method = head.method.decode("latin-1")
        attempt.path = head.target.decode("latin-1")
        rid = head.headers.get(self.ring.settings.key)
        if rid is not None:
            attempt.rid = rid.decode("latin-1")
        mode, length = body_framing(head, None)
        want = attempt.rid is None and bool(self.ring.settings.path)
        if mode == LENGTH:
            want = want and length <= MAX_CAPTURE
        self.capture = bytearray() if want and mode != NO_BODY else None
        return mode, length, self.capture is not None

    def _req_body(self, data: bytes) -> None:
        capture = self.capture
        if capture is None:
            return
        capture += data
        if len(capture) > MAX_CAPTURE:
            self.capture = None
            self.up.copy = False

    def _req_done(self, now: float) -> None:
        capture, self.capture = self.capture, None
        attempt = self.sending
        if capture is not None and attempt is not None and attempt.rid is None:
            attempt.rid = field_value(bytes(capture), self.ring.settings.path)
        self.sending = None

    # --- responses ------------------------------------------------------------------------------
    def _resp_start(self, now: float) -> None:
        if not self.pending:  # bytes nobody asked for (a 408 on an idle connection)
            self._stop()
            return
        attempt = self.pending[0]
        if attempt.first_byte is None:
            attempt.first_byte = now

    def _resp_head(self, head: Head, now: float) -> Framing:
        attempt = self.pending[0]
        status = head.status
        attempt.status = status
        mode, length = body_framing(head, (attempt.method or "").encode("latin-1"))
        if mode == INTERIM:
            return INTERIM, 0, False
        if status >= 200:
            retry_after = head.headers.get(b"retry-after")
            attempt.retry_after = None if retry_after is None else retry_after.decode("latin-1")
        if mode == TUNNEL:  # switched protocols or CONNECT: no more HTTP to read here
            self._complete(now)
            self._stop()
            return TUNNEL, 0, False
        if mode == NO_BODY:
            return NO_BODY, 0, False
        sse = head.headers.get(b"content-type", b"").lower().startswith(b"text/event-stream")
        attempt.sse = sse
        return mode, length, sse

    def _resp_body(self, data: bytes) -> None:
        """SSE: the events the body's bytes end."""
        self.pending[0].events += sum(1 for _ in self.sse_events.ends(data))

    def _resp_done(self, now: float) -> None:
        self.sse_events = EventEnds()
        self._complete(now)

    def _complete(self, now: float) -> None:
        attempt = self.pending.popleft()
        attempt.end = now
        attempt.ended = "complete"
        self.ring.publish(attempt)

    # --- the ends of the connection -------------------------------------------------------------
    def set_cause(self, cause: str, now: float) -> None:
        """The first way the connection began to end is what open attempts died of."""
        if self.cause is None:
            self.cause = (cause, now)

    def gateway_eof(self, now: float) -> None:
        """A gateway closes to give up (HTTP clients do not half-close to wait): every
        attempt still waiting for its response ends here, whatever comes later."""
        if self.pending:
            self.set_cause("gateway_fin", now)
            self._end_all(*self.cause or ("gateway_fin", now))
            self.down.stop()  # the rest of the response is nobody's: not parsed

    def upstream_eof(self, now: float, cut: bool = False) -> None:
        """The upstream's FIN reached the gateway: what is not complete now never will be.
        ``cut``: a toxic dropped bytes of this direction, so what is missing is its doing."""
        if cut and self.pending:
            self.set_cause("toxic", now)
        elif self.down.state == UNTIL_CLOSE and self.pending:
            self._resp_done(now)  # a close-delimited body ends at EOF: complete
        if self.pending:
            self.set_cause("upstream_closed", now)
            self._end_all(*self.cause or ("upstream_closed", now))

    def finish(self, now: float) -> None:
        """The connection is closed: every attempt still open ends as it did."""
        if self.finished:
            return
        self.finished = True
        cause, when = self.cause if self.cause is not None else ("upstream_closed", now)
        self._end_all(cause, when)
        self._stop()

    def _end_all(self, cause: str, when: float) -> None:
        while self.pending:
            attempt = self.pending.popleft()
            attempt.end = max(when, attempt.t)
            attempt.ended = cause
            self.ring.publish(attempt)


def refused(conn: str, ring: AttemptRing, peeked: bytes, now: float,
            accepted: float | None = None) -> None:
    """A dial that failed: one attempt, with whatever of the gateway's head had come. It
    started when the gateway's connection was ``accepted`` and ended when the dial gave up
    (``now``), so a dial that hung for seconds does not make it start late, out of order."""
    if accepted is None:
        accepted = now
    tap = ConnTap(conn, ring)
    if peeked:
        tap.up.feed(peeked, accepted)
        if tap.kind is None and tap.pending:  # a head not yet complete: read what is there
            _partial_head(tap.pending[0], peeked, ring)
    if not tap.pending:
        attempt = Attempt(conn, accepted)
        ring.begin(attempt)
        tap.pending.append(attempt)
    tap.set_cause("refused", now)
    tap.finish(now)


def _partial_head(attempt: Attempt, peeked: bytes, ring: AttemptRing) -> None:
    lines = peeked.split(b"\n")
    parts = lines[0].rstrip(b"\r").split(b" ")
    if len(parts) >= 2 and parts[0].isalpha():
        attempt.method, attempt.path = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        ring.connections["http"] += 1
    for line in lines[1:-1]:
        name, sep, value = line.rstrip(b"\r").partition(b":")
        if sep and name.lower() == ring.settings.key:
            attempt.rid = value.strip(b" \t").decode("latin-1")
