"""The backend's journal: every request it received, as the upstream side of a chaos run saw it.

With a real Toxiproxy server in front of the backend (no tap), this is the harness's witness
of the gateway's attempts (issue 18, chaos.witness): each record names the request id the
attempt carried, so the harness can join it to the client request that caused it.

One record per request (all but /healthz, /stats, /journal), appended when the request
ends: seq, conn (the peer "ip:port"), rid (the REQUEST_ID_HEADER header, else the
REQUEST_ID_FIELD dot path of a JSON body of at most 64 KiB), method, path, t (handler
entry), first_byte (response headers prepared), end, status, ended ("complete", or
"gateway_closed" when the peer went away before the response was written out: app.py runs
aiohttp with handler_cancellation, so `end` is then when the peer hung up),
retry_after (the response's Retry-After) and events (SSE events written, streams only).
Records are tuples in a bounded ring (JOURNAL_SIZE, 200000; 0 = off); what the ring
overflows is counted as `dropped`. ``GET /journal?after=N&limit=M`` reads them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNJOURNALED = ("/healthz", "/stats", "/journal")
MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIMIT = 10_000
SSE_EVENTS = "journal_sse_events"  # request key: SSE events a streaming handler wrote
CLIENT_GONE = "client_gone"  # request key: a stream's reader hung up (set by the handler)
_FIRST_BYTE = "journal_first_byte"
_PREPARED = "journal_prepared"  # the response whose head went out (a cancelled stream's)
FIELDS = ("seq", "conn", "rid", "method", "path", "t", "first_byte", "end", "status", "ended",
          "retry_after", "events")


class Journal:
    """The ring of records; seq numbers are contiguous, so ``after`` is an index."""

    def __init__(self, size: int, header: str, field: str | None) -> None:
        self.size = size
        self.header = header
        self.keys = field.split(".") if field else []
        self.ring: deque[tuple[Any, ...]] = deque(maxlen=max(size, 1))
        self.seq = 0
        self.dropped = 0

    @classmethod
    def from_env(cls) -> Journal:
        return cls(int(os.environ.get("JOURNAL_SIZE", "200000")),
                   os.environ.get("REQUEST_ID_HEADER") or "X-Chaos-Request-Id",
                   os.environ.get("REQUEST_ID_FIELD") or None)

    def append(self, record: list[Any]) -> None:
        self.seq += 1
        record[0] = self.seq
        if len(self.ring) == self.ring.maxlen:
            self.dropped += 1
        self.ring.append(tuple(record))

    def read(self, after: int, limit: int) -> dict[str, Any]:
        """Records with seq > after. An `after` beyond the last seq means this process
        restarted (its seq began again at 1): read from its start."""
        if after > self.seq:
            after = 0
        first = self.seq - len(self.ring) + 1  # seq of the oldest record kept
        start = max(after + 1 - first, 0)
        rows = [dict(zip(FIELDS, r, strict=True)) for r in islice(self.ring, start, start + limit)]
        for row in rows:
            row["conn"] = _shown_peer(row["conn"])
        return {"journal": True, "attempts": rows, "next": rows[-1]["seq"] if rows else after,
                "dropped": self.dropped}

    async def rid(self, request: web.Request) -> str | None:
        """The header, else the body field of a small JSON body (aiohttp keeps the body it
        read, so the handler reads it again for free)."""
        found = request.headers.get(self.header)
        if found is not None or not self.keys or request.content_type != "application/json":
            return found
        length = request.content_length
        if length is None or length > MAX_BODY_BYTES:
            return None
        try:
            node: Any = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return None
        for key in self.keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, str) else None


JOURNAL_KEY = web.AppKey("journal", Journal)


def _peer(request: web.Request) -> Any:
    """The connection's peername tuple: one object shared by the requests of a connection
    (formatted only when read, to keep the ring small)."""
    return request.transport.get_extra_info("peername") if request.transport else None


def _shown_peer(peer: Any) -> str | None:
    if not peer:
        return None
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


@web.middleware
async def journal(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Journal the request; a response the handler returned unsent is written out here
    (what aiohttp would do next), so `end` and `ended` say how the writing went."""
    book = request.app[JOURNAL_KEY]
    if request.path in UNJOURNALED or book.size <= 0:
        return await handler(request)
    record: list[Any] = [0, _peer(request), None, request.method,
                         sys.intern(request.path), time.time(),
                         None, None, None, "gateway_closed", None, None]
    response: web.StreamResponse | None = None
    try:
        record[2] = await book.rid(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            await _send(request, exc, record)
            raise
        await _send(request, response, record)
        return response
    except ConnectionError:
        return response  # type: ignore[return-value]  # the peer left: aiohttp logs it
    except Exception:
        record[8], record[9] = 500, "complete"  # aiohttp answers 500 for a handler's bug
        raise
    finally:
        _finish(request, record, response)
        book.append(record)


async def _send(request: web.Request, response: web.StreamResponse, record: list[Any]) -> None:
    """Write the response out (a no-op for one the handler already finished); a peer that
    went away surfaces here as a ConnectionError."""
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    if not request.get(CLIENT_GONE):
        record[9] = "complete"


def _finish(request: web.Request, record: list[Any], response: web.StreamResponse | None) -> None:
    record[6] = request.get(_FIRST_BYTE)
    record[7] = time.time()
    record[11] = request.get(SSE_EVENTS)
    response = response or request.get(_PREPARED)  # a cancelled handler returned nothing
    if response is not None:
        record[8] = response.status
        record[10] = response.headers.get("Retry-After")


async def mark_first_byte(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the response head is about to be written."""
    request[_FIRST_BYTE] = time.time()
    request[_PREPARED] = response


async def get_journal(request: web.Request) -> web.Response:
    try:
        after = int(request.query.get("after", "0"))
        limit = min(max(int(request.query.get("limit", str(DEFAULT_LIMIT))), 1), 100_000)
    except ValueError:
        return web.json_response({"error": "after and limit must be integers"}, status=400)
    return web.json_response(request.app[JOURNAL_KEY].read(after, limit))


def install(app: web.Application) -> None:
    """The journal, its first-byte signal and GET /journal on `app` (middleware added by
    the caller, outermost, so rate-limited answers are journaled too)."""
    app[JOURNAL_KEY] = Journal.from_env()
    app.on_response_prepare.append(mark_first_byte)
    app.router.add_get("/journal", get_journal)
