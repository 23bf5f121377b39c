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
Records are tuples in a bounded ring (JOURNAL_SIZE, 200000; 0 = off; the ring, its reading
and the request-id lookup are docker/shared/journal_ring.py, which the LLM provider's
journal shares); what the ring overflows is counted as `dropped`.
``GET /journal?after=N&limit=M`` reads them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

# isort: split
# docker/shared, copied beside app.py in the image (on PYTHONPATH for a local process).
from journal_ring import JournalRing, page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNJOURNALED = ("/healthz", "/stats", "/journal")
MAX_BODY_BYTES = 64 * 1024
SSE_EVENTS = "journal_sse_events"  # request key: SSE events a streaming handler wrote
CLIENT_GONE = "client_gone"  # request key: a stream's reader hung up (set by the handler)
_FIRST_BYTE = "journal_first_byte"
_PREPARED = "journal_prepared"  # the response whose head went out (a cancelled stream's)
FIELDS = ("seq", "conn", "rid", "method", "path", "t", "first_byte", "end", "status", "ended",
          "retry_after", "events")


class Journal(JournalRing):
    """The backend's ring: FIELDS, request ids from JSON bodies of at most 64 KiB."""

    def __init__(self, size: int, header: str, field: str | None) -> None:
        super().__init__(size, header, field, FIELDS, MAX_BODY_BYTES)

    @classmethod
    def from_env(cls) -> Journal:
        return cls(int(os.environ.get("JOURNAL_SIZE", "200000")),
                   os.environ.get("REQUEST_ID_HEADER") or "X-Chaos-Request-Id",
                   os.environ.get("REQUEST_ID_FIELD") or None)


JOURNAL_KEY = web.AppKey("journal", Journal)


def _peer(request: web.Request) -> Any:
    """The connection's peername tuple: one object shared by the requests of a connection
    (formatted only when read, to keep the ring small)."""
    return request.transport.get_extra_info("peername") if request.transport else None


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
    wanted = page(request.query)
    if wanted is None:
        return web.json_response({"error": "after and limit must be integers"}, status=400)
    return web.json_response(request.app[JOURNAL_KEY].read(*wanted))


def install(app: web.Application) -> None:
    """The journal, its first-byte signal and GET /journal on `app` (middleware added by
    the caller, outermost, so rate-limited answers are journaled too)."""
    app[JOURNAL_KEY] = Journal.from_env()
    app.on_response_prepare.append(mark_first_byte)
    app.router.add_get("/journal", get_journal)
