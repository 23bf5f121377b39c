"""Reference backend: the upstream that chaos scenarios put behind a gateway.

It exposes the kinds of traffic a real API / LLM backend produces (idempotent REST reads,
an OpenAI-style chat endpoint with SSE streaming, large payloads, slowness on demand, 429s)
and counts what reached it, so a test can tell how many requests the gateway let through.

Run directly (``python docker/backend/app.py``) or in its container; configured by env:
PORT (8080), HOST (0.0.0.0), DEFAULT_DELAY_MS (0), STREAM_CHUNK_DELAY_MS (20),
KEEPALIVE_TIMEOUT_MS (75000: idle keep-alive connections are closed after it),
RATE_LIMIT_RPS (0: off; else a global token bucket answering 429 + Retry-After),
RATE_LIMIT_RETRY_AFTER_S (1), OOM_AFTER_S (0: off; else that many seconds after the first
API request the process starts leaking memory until the container's limit kills it).

The journal (journal.py, ``GET /journal?after=N&limit=M``) records every API request it
received, as the harness's witness of the gateway's attempts: REQUEST_ID_HEADER
(X-Chaos-Request-Id) names the request id header, REQUEST_ID_FIELD (unset) a dot path of
JSON bodies of at most 64 KiB read when the header is absent (e.g. user or
metadata.chaos_id), JOURNAL_SIZE (200000 records kept; 0 = off).

TLS_DIR (unset: plain HTTP): serve TLS with the certificate in that folder, re-read on
SIGHUP; TLS_RELOAD=drop resets every open connection on that reload; KEEPALIVE_MAX_REQUESTS
(0: no cap) closes a connection after that many requests, as nginx's keepalive_requests
(tls_serving.py and connections.py, shared with the other reference services).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

# isort: split
# Sibling module: the Dockerfile copies it flat into /app next to app.py.
from journal import CLIENT_GONE, SSE_EVENTS, install, journal
from tls_serving import serve

LOG = logging.getLogger("backend")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_FILLER_BYTES = 64 * 1024 * 1024
MAX_DELAY_MS = 10 * 60 * 1000
DEFAULT_COMPLETION_TOKENS = 16
MAX_COMPLETION_TOKENS = 4096
WORDS = ("the", "gateway", "kept", "its", "promise", "under", "chaos", "and", "every",
         "request", "got", "an", "honest", "answer", "from", "upstream")


@dataclass(frozen=True)
class BackendConfig:
    """Effective configuration, read once at startup and logged so runs are reproducible."""

    host: str
    port: int
    default_delay_ms: int
    stream_chunk_delay_ms: int
    keepalive_timeout_ms: int = 75_000
    rate_limit_rps: float = 0.0
    rate_limit_retry_after_s: int = 1
    oom_after_s: float = 0.0

    @classmethod
    def from_env(cls) -> BackendConfig:
        return cls(
            host=os.environ.get("HOST", "0.0.0.0"),
            port=int(os.environ.get("PORT", "8080")),
            default_delay_ms=int(os.environ.get("DEFAULT_DELAY_MS", "0")),
            stream_chunk_delay_ms=int(os.environ.get("STREAM_CHUNK_DELAY_MS", "20")),
            keepalive_timeout_ms=int(os.environ.get("KEEPALIVE_TIMEOUT_MS", "75000")),
            rate_limit_rps=float(os.environ.get("RATE_LIMIT_RPS", "0")),
            rate_limit_retry_after_s=int(os.environ.get("RATE_LIMIT_RETRY_AFTER_S", "1")),
            oom_after_s=float(os.environ.get("OOM_AFTER_S", "0")),
        )


CONFIG_KEY = web.AppKey("config", BackendConfig)
STATS_KEY = web.AppKey("stats", Counter)
LIMITER_KEY = web.AppKey("limiter", "RateLimiter")
HOG_KEY = web.AppKey("hog", list)
LEAK_KEY = web.AppKey("leak", dict)
UNMETERED = ("/healthz", "/stats", "/journal")
MAX_HOG_MB = 4096


class RateLimiter:
    """A global token bucket that, like many public APIs, punishes clients that ignore it.

    Once the bucket is empty, everything is refused for Retry-After seconds. A request
    that arrives during that pause (later than a short grace for requests already in
    flight) starts the pause over: a caller that keeps hammering never gets back in,
    one that waits as told does.
    """

    GRACE_S = 0.2

    def __init__(self, rps: float, retry_after_s: int, now: float | None = None) -> None:
        self.rps = rps
        self.retry_after_s = retry_after_s
        self.tokens = rps
        self.refilled = time.monotonic() if now is None else now
        self.banned_at = 0.0
        self.banned_until = 0.0

    def admit(self, now: float) -> bool:
        if now < self.banned_until:
            if now - self.banned_at > self.GRACE_S:
                self.banned_until = now + self.retry_after_s
            return False
        self.tokens = min(self.rps, self.tokens + max(0.0, now - self.refilled) * self.rps)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.banned_at = now
        self.banned_until = now + self.retry_after_s
        return False


def _hog(request: web.Request, megabytes: int) -> int:
    """Allocate and touch memory that is never freed; returns the total held in MiB."""
    held = request.app[HOG_KEY]
    for _ in range(megabytes):
        held.append(bytearray(b"\x01") * (1024 * 1024))
    return len(held)


async def _leak_forever(app: web.Application) -> None:
    """OOM_AFTER_S: wait, then leak 8 MiB every 20 ms until the kernel kills the process."""
    await asyncio.sleep(app[CONFIG_KEY].oom_after_s)
    LOG.warning("OOM_AFTER_S elapsed: leaking memory until the container limit is hit")
    held = app[HOG_KEY]
    while True:
        held.append(bytearray(b"\x01") * (8 * 1024 * 1024))
        await asyncio.sleep(0.02)


def _int_param(request: web.Request, name: str, default: int, upper: int) -> int:
    """Read a non-negative integer query parameter; a bad value is the client's 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be an integer") from None
    if value < 0:
        raise _bad_request(f"{name} must be >= 0")
    return min(value, upper)


def _bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 with an OpenAI-style JSON body, raisable from any handler."""
    body = json.dumps({"error": {"type": "invalid_request_error", "message": message}})
    return web.HTTPBadRequest(text=body, content_type="application/json")


async def _apply_delay(request: web.Request) -> None:
    """Sleep for ?delay_ms (or DEFAULT_DELAY_MS) so scenarios can make the backend slow."""
    default = request.app[CONFIG_KEY].default_delay_ms
    delay_ms = _int_param(request, "delay_ms", default, MAX_DELAY_MS)
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)


def _filler(request: web.Request) -> str:
    """?size=N bytes of padding, to exercise large payloads through the gateway."""
    return "x" * _int_param(request, "size", 0, MAX_FILLER_BYTES)


def _item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "name": f"item-{item_id}", "price_cents": 100 + len(item_id) * 7}


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_item(request: web.Request) -> web.Response:
    await _apply_delay(request)
    item = _item(request.match_info["item_id"])
    filler = _filler(request)
    if filler:
        item["filler"] = filler
    return web.json_response(item)


async def list_items(request: web.Request) -> web.Response:
    await _apply_delay(request)
    body: dict[str, Any] = {"items": [_item(str(i)) for i in range(1, 11)], "count": 10}
    filler = _filler(request)
    if filler:
        body["filler"] = filler
    return web.json_response(body)


async def ratelimited(_request: web.Request) -> web.Response:
    body = {"error": {"type": "rate_limit_exceeded", "message": "slow down, retry after 1s"}}
    return web.json_response(body, status=429, headers={"Retry-After": "1"})


async def status_code(request: web.Request) -> web.Response:
    """Answer with any status: lets tests make the upstream fail with a 502/503/504."""
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        raise _bad_request("code must be 200..599")
    await _apply_delay(request)
    return web.json_response({"status": code}, status=code)


async def hog(request: web.Request) -> web.Response:
    """Memory hog: ?mb=N more MiB held for the life of the process (for OOM scenarios)."""
    total = _hog(request, _int_param(request, "mb", 64, MAX_HOG_MB))
    return web.json_response({"held_mb": total})


async def get_stats(request: web.Request) -> web.Response:
    stats = request.app[STATS_KEY]
    return web.json_response({"requests": dict(stats), "total": sum(stats.values())})


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATS_KEY].clear()
    return web.json_response({"requests": {}, "total": 0})


async def _chat_request(request: web.Request) -> dict[str, Any]:
    """Parse and minimally validate an OpenAI chat request body."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad_request("body must be JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise _bad_request("messages must be a list")
    return body


def _completion_tokens(body: dict[str, Any]) -> list[str]:
    count = body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
    if not isinstance(count, int) or count < 1:
        raise _bad_request("max_tokens must be a positive int")
    count = min(count, MAX_COMPLETION_TOKENS)
    return [WORDS[i % len(WORDS)] + " " for i in range(count)]


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = " ".join(str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
    return len(text.split())


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _chat_request(request)
    tokens = _completion_tokens(body)
    await _apply_delay(request)
    meta = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "created": int(time.time()),
        "model": str(body.get("model") or "reference-model"),
    }
    if body.get("stream"):
        return await _stream_chat(request, meta, tokens)
    completion: dict[str, Any] = {
        **meta,
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "".join(tokens).strip()},
            "finish_reason": "length" if body.get("max_tokens") else "stop",
        }],
        "usage": {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(tokens),
            "total_tokens": _prompt_tokens(body) + len(tokens),
        },
    }
    filler = _filler(request)
    if filler:
        completion["filler"] = filler
    return web.json_response(completion)


def _chunk(meta: dict[str, Any], delta: dict[str, str], finish: str | None) -> bytes:
    payload = {**meta, "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n".encode()


async def _stream_chat(
    request: web.Request, meta: dict[str, Any], tokens: list[str]
) -> web.StreamResponse:
    """SSE like OpenAI: role chunk, one chunk per token (paced), finish chunk, [DONE]."""
    default_ms = request.app[CONFIG_KEY].stream_chunk_delay_ms
    delay_s = _int_param(request, "chunk_delay_ms", default_ms, MAX_DELAY_MS) / 1000
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    first: dict[str, str] = {"role": "assistant", "content": ""}
    filler = _filler(request)
    if filler:
        first["filler"] = filler
    await response.prepare(request)
    request[SSE_EVENTS] = 0
    try:
        await response.write(_chunk(meta, first, None))
        request[SSE_EVENTS] = 1
        for token in tokens:
            await asyncio.sleep(delay_s)
            await response.write(_chunk(meta, {"content": token}, None))
            request[SSE_EVENTS] += 1
        await response.write(_chunk(meta, {}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        request[SSE_EVENTS] += 2
        await response.write_eof()
    except ConnectionResetError:
        request[CLIENT_GONE] = True  # the reader hung up mid-stream: normal under chaos
    return response


@web.middleware
async def count_and_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by path (except /stats and /journal, the harness's own reads) and
    log method, path, status, ms."""
    started = time.monotonic()
    if not request.path.startswith(("/stats", "/journal")):
        request.app[STATS_KEY][request.path] += 1
    status: int | str = "error"
    try:
        response = await _metered(request, handler)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        status = "client_gone"
        raise
    finally:
        if request.get(CLIENT_GONE):
            status = f"{status} client_gone"
        elapsed_ms = (time.monotonic() - started) * 1000
        LOG.info("%s %s %s %.1fms", request.method, request.path, status, elapsed_ms)


async def _metered(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Rate limit and the OOM timer apply to API traffic, not to health checks."""
    app = request.app
    if request.path in UNMETERED:
        return await handler(request)
    config = app[CONFIG_KEY]
    leak = app[LEAK_KEY]
    if config.oom_after_s > 0 and "task" not in leak:
        leak["task"] = asyncio.get_running_loop().create_task(_leak_forever(app))
    limiter = app[LIMITER_KEY]
    if limiter is not None and not limiter.admit(time.monotonic()):
        body = {"error": {"type": "rate_limit_exceeded",
                          "message": f"slow down, retry after {limiter.retry_after_s}s"}}
        return web.json_response(body, status=429,
                                 headers={"Retry-After": str(limiter.retry_after_s)})
    return await handler(request)


def build_app(config: BackendConfig) -> web.Application:
    app = web.Application(middlewares=[journal, count_and_log], client_max_size=64 * 1024 * 1024)
    install(app)
    app[CONFIG_KEY] = config
    app[STATS_KEY] = Counter()
    app[LIMITER_KEY] = (RateLimiter(config.rate_limit_rps, config.rate_limit_retry_after_s)
                        if config.rate_limit_rps > 0 else None)
    app[HOG_KEY] = []
    app[LEAK_KEY] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/items", list_items)
    app.router.add_get("/api/items/{item_id}", get_item)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_route("*", "/ratelimited", ratelimited)
    app.router.add_route("*", "/status/{code:\\d+}", status_code)
    app.router.add_route("*", "/hog", hog)
    app.router.add_get("/stats", get_stats)
    app.router.add_delete("/stats", reset_stats)
    return app


def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    config = BackendConfig.from_env()
    LOG.info("starting backend config=%s", json.dumps(asdict(config), sort_keys=True))
    app = build_app(config)
    context = serve(app)  # None: plain HTTP
    # A short shutdown_timeout makes SIGTERM end open SSE streams instead of waiting 60 s.
    # handler_cancellation: a handler whose client hung up is cancelled at once, so the
    # journal's `end` of an abandoned request is when the gateway gave up on it (its
    # upstream timeout), not when the handler would have answered.
    web.run_app(app, host=config.host, port=config.port, ssl_context=context,
                shutdown_timeout=0.3, access_log=None, print=None,
                keepalive_timeout=config.keepalive_timeout_ms / 1000,
                handler_cancellation=True)


if __name__ == "__main__":
    main()
