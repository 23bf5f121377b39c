"""The exchange gate: HTTP-aware toxics on one proxied HTTP/1.1 connection.

A connection of a proxy that has an HTTP- or stream-aware toxic (``http_spec.py``)
gets a ``Gate``: one ``http1.Reader`` per direction, fed in steps that end exactly
where the reader's framing changes (a head line, a chunk line, a body run), so the
gate knows where each message starts and ends. Requests are matched to responses
in order (``pending``), so keep-alive and pipelined requests stay in sync when one
is answered by the proxy itself:

- at a request head the toxics are drawn for that request (``match``, ``first``,
  ``toxicity`` per request): ``http_abort`` drops the request (head and body) and
  answers it in its turn, after the responses of the requests before it;
  ``http_reset`` at ``request`` resets the connection; ``http_latency`` at
  ``request`` holds the head (and what follows) for latency +- jitter;
- at a response head: ``http_latency`` at ``response`` holds it (time to first
  byte), ``http_reset`` at ``response`` resets after passing it, and an ``sse_*``
  toxic takes an event-stream body over (``sse_toxics.py``; a chunked body is
  re-chunked so events can be inserted anywhere, and a ``Content-Length`` body is
  re-framed, chunked or close-delimited: ``reframed``).

Bytes of requests no toxic applies to, and of their responses, pass unchanged and
in order; body runs of such exchanges may still be spliced (``opaque``).
Byte-level toxics of the same proxy still apply to what the gate forwards.
"""

from __future__ import annotations

import asyncio
import http
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaos.proxy.embedded.http1 import (
    BODY,
    CHUNK_DATA,
    CHUNKED,
    DEAD,
    HEAD,
    INF,
    INTERIM,
    LENGTH,
    NO_BODY,
    TUNNEL,
    UNTIL_CLOSE,
    Framing,
    Head,
    Reader,
    body_framing,
    head_end,
)
from chaos.proxy.embedded.http_spec import HTTP_TYPES
from chaos.proxy.embedded.sse_toxics import END, RESET, STALL, SseFault
from chaos.proxy.embedded.toxic_spec import Toxic

if TYPE_CHECKING:
    from chaos.proxy.embedded.link import Connection

Forward = Callable[[bytes], Awaitable[None]]


class Out:
    """What one read makes the gate forward, sent as one write: a small exchange costs
    the pipe one send, as it does without the gate."""

    def __init__(self, forward: Forward, conn: Connection) -> None:
        self.forward = forward
        self.conn = conn
        self.parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        self.parts.append(data)

    async def flush(self) -> None:
        parts = self.parts
        if parts and not self.conn.closed:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            await self.forward(data)


def http_toxics(toxics: list[Toxic]) -> list[Toxic]:
    return [t for t in toxics if t.type in HTTP_TYPES]


def matches(toxic: Toxic, head: Head) -> bool:
    match: dict[str, Any] = toxic.attributes.get("match") or {}
    method = match.get("method")
    if method is not None and head.method.decode("latin-1").upper() != method:
        return False
    path = match.get("path")
    if path is not None and not head.target.decode("latin-1").startswith(path):
        return False
    for name, value in (match.get("header") or {}).items():
        if head.headers.get(name.lower().encode("latin-1")) != value.encode("latin-1"):
            return False
    return True


def synthetic(toxic: Toxic, head: Head) -> tuple[bytes, bool]:
    """The response an ``http_abort`` answers with, and whether to close after it."""
    attrs = toxic.attributes
    status = int(attrs["status"])
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = str(attrs["body"]).encode()
    headers = {k: v for k, v in attrs["headers"].items()
               if k.lower() not in ("content-length", "transfer-encoding")}
    lower = {k.lower() for k in headers}
    if body and "content-type" not in lower:
        json_like = body.lstrip()[:1] in (b"{", b"[")
        headers["Content-Type"] = "application/json" if json_like else "text/plain; charset=utf-8"
    close = b"close" in head.headers.get(b"connection", b"").lower()
    if close and "connection" not in lower:
        headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw + (b"" if head.method == b"HEAD" else body), close


def reframed(raw: bytes, chunked: bool) -> bytes:
    """The head of a ``Content-Length`` event stream an ``sse_*`` toxic takes over.

    The toxic may end the body early (``sse_error``) or make it longer
    (``sse_corrupt``), so the upstream's length would be a lie that leaves the
    client waiting for bytes that never come, or reading the rest of the stream as
    the next response. So the head loses its ``Content-Length`` and the body is
    framed by the gate: chunked when both the request and the response are
    HTTP/1.1, else close-delimited (``Connection: close``, and the gate closes the
    connection at the body's end), the HTTP/1.0 way. A stall or cut stays what it
    is: a body whose end never comes."""
    lines = raw.rstrip(b"\r\n").split(b"\n")
    drop = (b"content-length",) if chunked else (b"content-length", b"connection",
                                                  b"keep-alive")
    kept = [lines[0].rstrip(b"\r")]
    kept += [line.rstrip(b"\r") for line in lines[1:]
             if line.split(b":", 1)[0].strip().lower() not in drop]
    kept.append(b"Transfer-Encoding: chunked" if chunked else b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


@dataclass
class Exchange:
    """One request and its response, as the gate handles them."""

    head: Head
    abort: bytes | None = None  # the proxy's own answer: the request is dropped
    close_after: bool = False
    reset_at: str | None = None  # request | response
    delay_request: float = 0.0
    delay_response: float = 0.0
    sse_toxic: Toxic | None = None
    sse: SseFault | None = None
    rechunk: bool = False  # the body goes out chunked, in the gate's own chunks
    reframe: bool = False  # a Content-Length body: the head is rewritten (reframed())
    ended: bool = False  # the body was ended early: drop the rest of the upstream's


def _delay(toxic: Toxic) -> float:
    jitter = int(toxic.attributes["jitter"])
    return (int(toxic.attributes["latency"]) + (random.uniform(-jitter, jitter)
                                                if jitter else 0.0)) / 1000.0


class Gate:
    """Both directions of one connection under its HTTP toxics."""

    def __init__(self, conn: Connection, toxics: list[Toxic], counts: dict[str, int]) -> None:
        self.conn = conn
        self.toxics = http_toxics(toxics)
        self.counts = counts  # matched requests per toxic name, since it was created
        self.req = Reader(False, self._nothing, self._req_head, self._req_done, self._body,
                          self._broken)
        self.resp = Reader(True, self._nothing, self._resp_head, self._resp_done, self._body,
                           self._broken)
        self.pending: deque[Exchange] = deque()
        self.sending: Exchange | None = None
        self.answering: Exchange | None = None
        self.req_buf = bytearray()
        self.resp_buf = bytearray()
        self.fired: set[str] = set()
        self.dead = False
        self.stalled = False
        self.interim = False

    # --- reader callbacks -----------------------------------------------------------------
    def _nothing(self, now: float) -> None:
        pass

    def _body(self, data: bytes) -> None:
        pass

    def _broken(self) -> None:
        self.dead = True
        self.req.stop()
        self.resp.stop()

    def _req_head(self, head: Head, now: float) -> Framing:
        self.sending = self._decide(head)
        self.fired.add("head")
        mode, length = body_framing(head, None)
        return mode, length, False

    def _req_done(self, now: float) -> None:
        self.fired.add("req_done")

    def _resp_head(self, head: Head, now: float) -> Framing:
        self.fired.add("head")
        ex = self.pending[0] if self.pending else None
        mode, length = body_framing(head, ex.head.method if ex is not None else b"")
        self.interim = mode == INTERIM
        if self.interim:
            return INTERIM, 0, False
        self.answering = ex
        if mode == TUNNEL:
            self.dead = True
        elif ex is not None and ex.sse_toxic is not None and mode != NO_BODY and head.headers.get(
                b"content-type", b"").lower().startswith(b"text/event-stream"):
            ex.sse = SseFault(ex.sse_toxic)
            if mode == LENGTH:  # re-framed: see reframed()
                ex.reframe = True
                ex.rechunk = head.version == ex.head.version == b"HTTP/1.1"
            else:
                ex.rechunk = mode == CHUNKED
        return mode, length, False

    def _resp_done(self, now: float) -> None:
        self.fired.add("resp_done")

    # --- the draw ---------------------------------------------------------------------------
    def _decide(self, head: Head) -> Exchange:
        ex = Exchange(head)
        for toxic in self.toxics:
            if not matches(toxic, head):
                continue
            count = self.counts.get(toxic.name, 0) + 1
            self.counts[toxic.name] = count
            first = int(toxic.attributes.get("first") or 0)
            if first and count > first:
                continue
            if random.random() >= toxic.toxicity:
                continue
            self.conn.proxy.stats.toxic_applied(toxic)
            kind = toxic.type
            if kind == "http_abort" and ex.abort is None:
                ex.abort, ex.close_after = synthetic(toxic, head)
            elif kind == "http_reset" and ex.reset_at is None:
                ex.reset_at = str(toxic.attributes["at"])
            elif kind == "http_latency":
                if toxic.attributes["at"] == "request":
                    ex.delay_request += _delay(toxic)
                else:
                    ex.delay_response += _delay(toxic)
            elif kind.startswith("sse_") and ex.sse_toxic is None:
                ex.sse_toxic = toxic
        return ex

    # --- stepping: each piece ends where the reader's framing may change ---------------------
    @staticmethod
    def _cut(reader: Reader, data: bytes, pos: int, held: int) -> int:
        state = reader.state
        if state in (BODY, CHUNK_DATA):
            return min(len(data), pos + reader.remaining)
        if state in (UNTIL_CLOSE, DEAD):
            return len(data)
        if state == HEAD and not held and pos < len(data) and data[pos] not in b"\r\n":
            stop = head_end(data, pos)  # the whole head in this read: one step
            if stop >= 0:
                return stop
        nl = data.find(b"\n", pos)
        return len(data) if nl < 0 else nl + 1

    def _step(self, reader: Reader, held: bytearray, data: bytes, pos: int, now: float
              ) -> tuple[int, bytes, int]:
        """Feed ``reader`` the next piece: (its state before, the piece, where it ended)."""
        state = reader.state
        end = self._cut(reader, data, pos, len(held))
        piece = data[pos:end]
        self.fired.clear()
        reader.feed(piece, now)
        return state, piece, end

    @staticmethod
    def _held(held: bytearray) -> bytes:
        raw = bytes(held)
        held.clear()
        return raw

    def _pass_rest(self, held: bytearray, data: bytes, pos: int, forward: Out) -> None:
        """No more HTTP to follow on this connection: what is held and the rest go as is."""
        if held:
            forward.add(self._held(held))
        forward.add(data[pos:])

    # --- the request side ---------------------------------------------------------------------
    async def request_bytes(self, data: bytes, forward: Forward) -> None:
        out = Out(forward, self.conn)
        await self._requests(data, out)
        await out.flush()

    async def _requests(self, data: bytes, forward: Out) -> None:
        pos, now = 0, time.time()
        while pos < len(data) and not self.conn.closed:
            if self.dead:
                self._pass_rest(self.req_buf, data, pos, forward)
                return
            state, piece, pos = self._step(self.req, self.req_buf, data, pos, now)
            if state == HEAD:
                self.req_buf += piece
                if self.dead:  # a head it cannot read: what it held goes on now
                    forward.add(self._held(self.req_buf))
                elif "head" in self.fired:
                    ex = self.sending
                    assert ex is not None
                    await self._request_head(ex, self._held(self.req_buf), forward)
            elif self.dead or self.sending is None or self.sending.abort is None:
                forward.add(piece)
            if "req_done" in self.fired:
                self.sending = None

    async def _request_head(self, ex: Exchange, raw: bytes, forward: Out) -> None:
        if ex.reset_at == "request":
            await forward.flush()
            self.conn.toxic_close(True)
            return
        if ex.delay_request > 0:
            await forward.flush()
            await asyncio.sleep(ex.delay_request)
        self.pending.append(ex)
        if ex.abort is not None:
            if len(self.pending) == 1:
                await forward.flush()
                await self._answer_front()
            return
        forward.add(raw)

    async def _answer_front(self) -> None:
        """Send the proxy's own answers that are next in line."""
        while self.pending and self.pending[0].abort is not None and not self.conn.closed:
            ex = self.pending[0]
            assert ex.abort is not None
            await self.conn.down.forward(ex.abort)
            self.pending.popleft()
            if ex.close_after:
                self.conn.toxic_close(False)
                return

    # --- the response side ----------------------------------------------------------------------
    async def response_bytes(self, data: bytes, forward: Forward) -> None:
        out = Out(forward, self.conn)
        await self._responses(data, out)
        await out.flush()

    async def _responses(self, data: bytes, forward: Out) -> None:
        pos, now = 0, time.time()
        while pos < len(data) and not self.conn.closed:
            if self.stalled:
                return
            if self.dead:
                self._pass_rest(self.resp_buf, data, pos, forward)
                return
            state, piece, pos = self._step(self.resp, self.resp_buf, data, pos, now)
            if state == HEAD:
                self.resp_buf += piece
                if "head" in self.fired and not (self.interim or self.dead):
                    await self._response_head(self._held(self.resp_buf), forward)
                elif "head" in self.fired or self.dead:  # 1xx, a tunnel, or unreadable
                    forward.add(self._held(self.resp_buf))
            else:
                await self._response_piece(state, piece, forward)
            if "resp_done" in self.fired:
                await self._response_done(forward)

    async def _response_head(self, raw: bytes, forward: Out) -> None:
        ex = self.answering
        if ex is None:
            forward.add(raw)
            return
        if ex.delay_response > 0:
            await forward.flush()
            await asyncio.sleep(ex.delay_response)
        forward.add(reframed(raw, ex.rechunk) if ex.reframe else raw)
        if ex.reset_at == "response":
            await forward.flush()
            self.conn.toxic_close(True)
            return
        if ex.sse is not None:
            out, action = ex.sse.begin()
            await self._sse_out(ex, out, action, forward)

    async def _response_piece(self, state: int, piece: bytes, forward: Out) -> None:
        ex = self.answering
        if ex is None or ex.sse is None:
            forward.add(piece)
            return
        if ex.ended:
            return
        if state not in (BODY, CHUNK_DATA, UNTIL_CLOSE):
            if not ex.rechunk:  # framing of a body that keeps its own framing
                forward.add(piece)
            return
        out, action = ex.sse.feed(piece)
        await self._sse_out(ex, out, action, forward)

    async def _sse_out(self, ex: Exchange, out: list[bytes], action: str | None,
                       forward: Out) -> None:
        for chunk in out:
            if not chunk:
                continue
            forward.add(b"%x\r\n%s\r\n" % (len(chunk), chunk) if ex.rechunk else chunk)
        if action is None:
            return
        if action == STALL:
            self.stalled = True
        elif action == END:
            ex.ended = True
            if ex.rechunk:
                forward.add(b"0\r\n\r\n")
            else:
                await forward.flush()
                self.conn.toxic_close(False)
        else:
            await forward.flush()
            self.conn.toxic_close(action == RESET)

    async def _response_done(self, forward: Out) -> None:
        if self.stalled:  # the end of a stalled body never comes (Content-Length: 0 too)
            return
        ex = self.answering
        self.answering = None
        if ex is not None and ex.rechunk and not ex.ended:
            forward.add(b"0\r\n\r\n")
        await forward.flush()  # all of it written before the next answer may go out
        if ex is not None and ex.reframe and not ex.rechunk:  # close-delimited now
            self.conn.toxic_close(False)
            return
        if ex is not None and self.pending and self.pending[0] is ex:
            self.pending.popleft()
        await self._answer_front()

    # --- the splice path ------------------------------------------------------------------------
    def opaque(self, response: bool) -> int:
        """Body bytes of an untouched exchange the pipe may move without the gate."""
        if self.dead:
            return INF
        if response:
            if self.stalled:
                return 0
            ex, reader = self.answering, self.resp
            touched = ex is not None and (ex.sse is not None or ex.ended)
        else:
            ex, reader = self.sending, self.req
            touched = ex is not None and ex.abort is not None
        if touched:
            return 0
        if reader.state in (BODY, CHUNK_DATA):
            return reader.remaining
        return INF if reader.state == UNTIL_CLOSE else 0

    async def skipped(self, response: bool, count: int) -> None:
        self.fired.clear()
        (self.resp if response else self.req).skip(count, time.time())
        if "req_done" in self.fired:
            self.sending = None
        if "resp_done" in self.fired:
            out = Out(self.conn.down.forward, self.conn)
            await self._response_done(out)
            await out.flush()


def can_attach(conn: Connection) -> bool:
    """A connection opened before its proxy had an HTTP toxic gets a gate once its tap
    shows both directions between messages (without a tap: never, it keeps its bytes)."""
    tap = conn.tap
    if not conn.up.seen and not conn.down.seen:
        return True
    if tap is None or tap.kind != "http":
        return False
    return (not tap.pending and tap.sending is None and tap.up.state == HEAD
            and not tap.up.started and tap.down.state == HEAD and not tap.down.started
            and conn.down.queue.empty() and not conn.down.busy)


__all__ = ["Gate", "can_attach", "http_toxics", "matches", "reframed", "synthetic"]
