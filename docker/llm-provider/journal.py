"""The provider's journal: every request it received, the upstream witness of LLM facts.

The reference backend's shape (docker/backend/journal.py): ``GET /journal?after=N&limit=M``
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

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LIMIT = 10_000
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


class Journal:
    """The ring of records; seq numbers are contiguous, so ``after`` is an index."""

    def __init__(self, size: int, header: str, field: str | None) -> None:
        self.size = size
        self.header = header
        self.keys = field.split(".") if field else []
        self.ring: deque[tuple[Any, ...]] = deque(maxlen=max(size, 1))
        self.seq = 0
        self.dropped = 0

    def append(self, record: dict[str, Any]) -> None:
        self.seq += 1
        record["seq"] = self.seq
        if len(self.ring) == self.ring.maxlen:
            self.dropped += 1
        self.ring.append(tuple(record.get(name) for name in FIELDS))

    def read(self, after: int, limit: int) -> dict[str, Any]:
        """Records with seq > after; an `after` beyond the last seq means a restart."""
        if after > self.seq:
            after = 0
        first = self.seq - len(self.ring) + 1
        start = max(after + 1 - first, 0)
        rows = [dict(zip(FIELDS, r, strict=True)) for r in islice(self.ring, start, start + limit)]
        return {"journal": True, "attempts": rows, "next": rows[-1]["seq"] if rows else after,
                "dropped": self.dropped}

    async def rid(self, request: web.Request) -> str | None:
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


def _peer(request: web.Request) -> str | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return None
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


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
        book.append(record)


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
    try:
        after = int(request.query.get("after", "0"))
        limit = min(max(int(request.query.get("limit", str(DEFAULT_LIMIT))), 1), 100_000)
    except ValueError:
        return web.json_response({"error": "after and limit must be integers"}, status=400)
    return web.json_response(request.app[JOURNAL_KEY].read(after, limit))


def install(app: web.Application, size: int, header: str, field: str | None) -> None:
    app[JOURNAL_KEY] = Journal(size, header, field)
    app.on_response_prepare.append(mark_first_byte)
    app.router.add_get("/journal", get_journal)
