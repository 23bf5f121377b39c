"""The provider's journal: every request it received, the upstream witness of LLM facts.

The reference backend's shape (docker/backend/journal.py; the two share their ring, its
reading and the request-id lookup: docker/shared/journal_ring.py): ``GET /journal?after=N&limit=M``
answers ``{"journal": true, "attempts": [...], "next": N, "dropped": D}``, records in a
bounded ring (JOURNAL_SIZE, 200000; 0 = off), appended when the request ends. Each record
has the backend's fields: seq, conn (peer "ip:port"), rid (the request-id header, else the
body field, default `user`), method, path, t (handler entry), first_byte (response head
prepared), end, status, ended, retry_after (Retry-After, or retry-after-ms as "Nms"),
events (SSE events written, streams only); and the LLM's: provider (its name), api
(openai | anthropic), model, stream, rule (the rule that answered, "script#0" / "r1#0",
or null), behaviour (e.g. "429 retry_after=2s", "stall_after=3", "normal"), tokens
(content tokens sent), finish_reason (the one sent, or null), prompt_tokens.

`ended`: complete; gateway_closed (the peer hung up before the answer was written out:
aiohttp runs with handler_cancellation, so `end` is then when it hung up); cut (the
provider closed the connection on purpose: cut_after); stalled (the stream stalled on
purpose and the peer left, or the stall's 300 s bound ran out, before it resumed).
Not journaled: /healthz, /journal, /_chaos/*.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

# isort: split
# docker/shared, copied beside app.py in the image (on PYTHONPATH for a local process).
from journal_ring import JournalRing, page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 1024 * 1024
# request keys: SSE events written and the LLM fields (set by the handler); "cut" or
# "stalled" when the provider ended the connection so on purpose
SSE_EVENTS = web.RequestKey("journal_sse_events", int)
LLM = web.RequestKey("journal_llm", dict)
ENDED = web.RequestKey("journal_ended", str)
_FIRST_BYTE = web.RequestKey("journal_first_byte", float)
_PREPARED = web.RequestKey("journal_prepared", web.StreamResponse)
BASE_FIELDS = ("seq", "conn", "rid", "method", "path", "t", "first_byte", "end", "status",
               "ended", "retry_after", "events")
LLM_FIELDS = ("provider", "api", "model", "stream", "rule", "behaviour", "tokens",
              "finish_reason", "prompt_tokens")
FIELDS = BASE_FIELDS + LLM_FIELDS


def unjournaled(path: str) -> bool:
    return path in ("/healthz", "/journal") or path.startswith("/_chaos/")


class Journal(JournalRing):
    """The provider's ring (docker/shared/journal_ring.py): FIELDS, request ids from JSON
    bodies of at most 1 MiB."""

    def __init__(self, size: int, header: str, field: str | None) -> None:
        super().__init__(size, header, field, FIELDS, MAX_BODY_BYTES)


JOURNAL_KEY = web.AppKey("journal", Journal)


def _peer(request: web.Request) -> Any:
    """The connection's peername tuple (shown as "ip:port" when read)."""
    return request.transport.get_extra_info("peername") if request.transport else None


@web.middleware
async def journal(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Journal the request; a response the handler returned unsent is written out here,
    so `end` and `ended` say how the writing went."""
    book = request.app[JOURNAL_KEY]
    if unjournaled(request.path) or book.size <= 0:
        return await handler(request)
    record: dict[str, Any] = {"conn": _peer(request), "method": request.method,
                              "path": request.path, "t": time.time(), "ended": "gateway_closed"}
    response: web.StreamResponse | None = None
    try:
        record["rid"] = await book.rid(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            await _send(request, exc, record)
            raise
        await _send(request, response, record)
        return response
    except ConnectionError:
        return response  # type: ignore[return-value]  # the peer left
    except Exception:
        record["status"], record["ended"] = 500, "complete"
        raise
    finally:
        _finish(request, record, response)
        book.append([record.get(name) for name in FIELDS])


async def _send(request: web.Request, response: web.StreamResponse,
                record: dict[str, Any]) -> None:
    if request.get(ENDED) is not None:
        return  # cut or stalled: the connection is closed, nothing more goes out
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    record["ended"] = "complete"


def _finish(request: web.Request, record: dict[str, Any],
            response: web.StreamResponse | None) -> None:
    record["first_byte"] = request.get(_FIRST_BYTE)
    record["end"] = time.time()
    record["events"] = request.get(SSE_EVENTS)
    record.update(request.get(LLM) or {})
    if request.get(ENDED) is not None:
        record["ended"] = request[ENDED]
    response = response or request.get(_PREPARED)
    if response is not None:
        record["status"] = response.status
        after = response.headers.get("Retry-After")
        ms = response.headers.get("retry-after-ms")
        record["retry_after"] = after if after is not None else (
            f"{ms}ms" if ms is not None else None)


async def mark_first_byte(request: web.Request, response: web.StreamResponse) -> None:
    request[_FIRST_BYTE] = time.time()
    request[_PREPARED] = response


async def get_journal(request: web.Request) -> web.Response:
    wanted = page(request.query)
    if wanted is None:
        return web.json_response({"error": "after and limit must be integers"}, status=400)
    return web.json_response(request.app[JOURNAL_KEY].read(*wanted))


def install(app: web.Application, size: int, header: str, field: str | None) -> None:
    app[JOURNAL_KEY] = Journal(size, header, field)
    app.on_response_prepare.append(mark_first_byte)
    app.router.add_get("/journal", get_journal)
