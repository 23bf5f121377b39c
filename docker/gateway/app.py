"""Reference gateway: a reverse proxy that handles upstream failure the right way.

Forwards everything under / (except its own /healthz and /metrics) to UPSTREAM_URL with
per-try and total timeouts, retries with jittered exponential backoff for idempotent
requests only, a circuit breaker, 502/503/504 JSON errors instead of resets, streaming
pass-through (SSE included) and a request size limit. Each mechanism can be switched off
(see config.py) so chaos scenarios can show the failure a gateway without it produces.

Run directly (``python docker/gateway/app.py``) or in its container.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

# isort: split
# Sibling modules: the Dockerfile copies them flat into /app next to app.py.
from breaker import CircuitBreaker
from config import GatewayConfig
from metrics import GatewayMetrics
from upstream import (
    BufferedReply,
    CircuitOpenError,
    Outcome,
    OutgoingRequest,
    UpstreamBackoff,
    UpstreamClient,
    UpstreamError,
    build_session,
)

LOG = logging.getLogger("gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
BODY_CHUNK_BYTES = 64 * 1024
RETRIES_HEADER = "X-Gateway-Retries"

CONFIG_KEY = web.AppKey("config", GatewayConfig)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
BREAKER_KEY = web.AppKey("breaker", CircuitBreaker)
UPSTREAM_KEY = web.AppKey("upstream", UpstreamClient)
OUTCOME_KEY = "gateway_outcome"  # request-scoped: "reset" when the client got an RST


class PayloadTooLarge(Exception):
    """The client's body exceeded GATEWAY_MAX_BODY_BYTES."""


# ---------------------------------------------------------------- responses and resets


def json_error(status: int, kind: str, message: str, retries: int = 0,
               headers: dict[str, str] | None = None) -> web.Response:
    """Every gateway-made error is JSON, so clients can tell it from an upstream body."""
    extra = dict(headers or {})
    if retries:
        extra[RETRIES_HEADER] = str(retries)
    body = {"error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=extra)


def reset_client(request: web.Request) -> web.Response:
    """Behave like a naive proxy: RST the client connection (SO_LINGER {1,0} + abort)."""
    request[OUTCOME_KEY] = "reset"
    transport = request.transport
    if transport is not None and not transport.is_closing():
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp will fail to write this and drop it quietly; the client already saw the RST.
    return web.Response(status=502)


def filtered_headers(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """Copy headers minus hop-by-hop ones, those named in Connection, and `drop`."""
    named = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    excluded = HOP_BY_HOP | named | drop
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in excluded)


# ---------------------------------------------------------------- request side


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """Buffer the client body (retries need it again), refusing anything over `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge
    if not request.body_exists:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(BODY_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge
    return bytes(body)


def outgoing_request(request: web.Request, upstream_url: str, body: bytes | None
                     ) -> OutgoingRequest:
    # Host is the upstream's; the body was already read, so Content-Length is recomputed
    # and an Expect: 100-continue handshake is already over.
    headers = filtered_headers(request.headers, frozenset({"host", "content-length", "expect"}))
    if request.remote:
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {request.remote}" if prior else request.remote
    url = URL(upstream_url + request.raw_path, encoded=True)
    return OutgoingRequest(request.method, url, headers, body)


# ---------------------------------------------------------------- response side


def is_event_stream(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    return headers.get("Content-Type", "").lower().startswith("text/event-stream")


def answer_failure(request: web.Request, outcome: Outcome) -> web.Response:
    """Turn a failure that happened before any response byte into 502/503/504 (or an RST)."""
    config = request.app[CONFIG_KEY]
    error = outcome.error
    if isinstance(error, CircuitOpenError):
        breaker = request.app[BREAKER_KEY]
        return json_error(503, "circuit_open", "upstream circuit breaker is open",
                          outcome.retries, {"Retry-After": breaker.retry_after_header()})
    if isinstance(error, UpstreamBackoff):
        return json_error(429, "upstream_rate_limited", str(error), outcome.retries,
                          {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))})
    assert isinstance(error, UpstreamError)
    if not config.error_mapping_enabled:
        return reset_client(request)
    if error.is_timeout:
        return json_error(504, "gateway_timeout", str(error), outcome.retries)
    return json_error(502, "bad_gateway", str(error), outcome.retries)


def relay_buffered(reply: BufferedReply, retries: int) -> web.Response:
    """Relay the upstream's own 502/503/504 once retries are exhausted."""
    headers = filtered_headers(CIMultiDictProxy(reply.headers), frozenset({"content-length"}))
    if retries:
        headers[RETRIES_HEADER] = str(retries)
    return web.Response(status=reply.status, reason=reply.reason, headers=headers,
                        body=reply.body)


async def relay_stream(request: web.Request, upstream: aiohttp.ClientResponse,
                       retries: int, started: float) -> web.StreamResponse:
    """Copy the upstream body to the client chunk by chunk, as it arrives.

    Only the idle timeout (sock_read) bounds a body: a long LLM stream that keeps
    producing tokens must survive. GATEWAY_LONG_STREAMS=off applies the total timeout
    to the body as well, like a proxy whose read timeout covers the whole response."""
    config = request.app[CONFIG_KEY]
    body_deadline = None if config.long_streams_enabled else started + config.total_timeout_s
    sse = is_event_stream(upstream.headers)
    drop = frozenset({"content-length"}) if sse else frozenset()
    headers = filtered_headers(upstream.headers, drop)
    if retries:
        headers[RETRIES_HEADER] = str(retries)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=headers)
    completed = False
    try:
        await response.prepare(request)
        while True:
            try:
                if body_deadline is None:
                    chunk = await upstream.content.readany()
                else:
                    async with asyncio.timeout(max(0.0, body_deadline - time.monotonic())):
                        chunk = await upstream.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return await end_broken_stream(request, response, sse, exc)
            if not chunk:
                break
            await response.write(chunk)
        completed = True
        await response.write_eof()
    except ConnectionResetError:
        request[OUTCOME_KEY] = "client_gone"
    finally:
        # A fully read upstream connection goes back to the pool; a half-read one is closed.
        if completed:
            upstream.release()
        else:
            upstream.close()
    return response


async def end_broken_stream(request: web.Request, response: web.StreamResponse, sse: bool,
                            exc: BaseException) -> web.StreamResponse:
    """The upstream died after headers went out: no retry is possible any more."""
    app = request.app
    app[METRICS_KEY].upstream_failures["midstream"] += 1
    app[BREAKER_KEY].record_failure()
    LOG.warning("upstream failed mid-stream on %s: %s", request.path, exc)
    if not app[CONFIG_KEY].stream_errors_enabled:
        # Naive: end the response as if it were complete. The client cannot tell a cut
        # stream from a finished one, except by the missing [DONE].
        request[OUTCOME_KEY] = "silently_truncated"
        await response.write_eof()
        return response
    if not app[CONFIG_KEY].error_mapping_enabled:
        reset_client(request)
        return response
    request[OUTCOME_KEY] = "truncated"
    if sse:
        event = {"error": {"type": "upstream_disconnected",
                           "message": f"upstream failed mid-stream: {type(exc).__name__}"}}
        await response.write(f"event: error\ndata: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # flush what was sent, then FIN: body visibly truncated
    return response


# ---------------------------------------------------------------- handlers


async def proxy(request: web.Request) -> web.StreamResponse:
    """Admission control first: above GATEWAY_MAX_CONCURRENCY, answer 503 at once
    rather than queue requests until clients time out."""
    config = request.app[CONFIG_KEY]
    metrics = request.app[METRICS_KEY]
    if config.max_concurrency and metrics.in_flight >= config.max_concurrency:
        metrics.shed += 1
        return json_error(503, "overloaded",
                          f"more than {config.max_concurrency} requests in flight",
                          headers={"Retry-After": "1"})
    metrics.in_flight += 1
    try:
        return await forward(request)
    finally:
        metrics.in_flight -= 1


async def forward(request: web.Request) -> web.StreamResponse:
    started = time.monotonic()
    config = request.app[CONFIG_KEY]
    try:
        body = await read_body(request, config.max_body_bytes)
    except PayloadTooLarge:
        if not config.body_drain_enabled:
            return reset_client(request)  # naive: drop the upload mid-way, client sees RST
        # aiohttp drains the unread rest of the body (lingering close) after answering,
        # so a client still sending gets to read this 413 instead of a reset.
        return json_error(413, "payload_too_large",
                          f"request body exceeds {config.max_body_bytes} bytes")
    outgoing = outgoing_request(request, config.upstream_url, body)
    outcome = await request.app[UPSTREAM_KEY].send(outgoing, started)
    if outcome.response is not None:
        return await relay_stream(request, outcome.response, outcome.retries, started)
    if outcome.reply is not None:
        return relay_buffered(outcome.reply, outcome.retries)
    return answer_failure(request, outcome)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    text = request.app[METRICS_KEY].render(request.app[BREAKER_KEY])
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


@web.middleware
async def log_and_count(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line per request (method, path, status, ms); proxied ones feed metrics."""
    started = time.monotonic()
    status: int | str = "error"
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        outcome = request.get(OUTCOME_KEY)
        if outcome == "reset":
            status = "reset"
        if request.path not in ("/healthz", "/metrics"):
            request.app[METRICS_KEY].requests_by_code[str(status)] += 1
        elapsed_ms = (time.monotonic() - started) * 1000
        LOG.info("%s %s %s %.1fms%s", request.method, request.path, status, elapsed_ms,
                 f" ({outcome})" if outcome and outcome != "reset" else "")


async def upstream_session(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the pooled ClientSession (and one for retries) for the app's lifetime."""
    session = build_session(app[CONFIG_KEY])
    fresh = build_session(app[CONFIG_KEY], fresh=True)  # retries never reuse a connection
    app[UPSTREAM_KEY] = UpstreamClient(app[CONFIG_KEY], session, app[BREAKER_KEY],
                                       app[METRICS_KEY], fresh)
    yield
    await session.close()
    await fresh.close()


def build_app(config: GatewayConfig) -> web.Application:
    # client_max_size is only a backstop: read_body enforces the limit with a JSON 413.
    app = web.Application(middlewares=[log_and_count],
                          client_max_size=config.max_body_bytes + 1)
    app[CONFIG_KEY] = config
    app[METRICS_KEY] = GatewayMetrics()
    app[BREAKER_KEY] = CircuitBreaker(config.breaker_failures, config.breaker_open_s,
                                      enabled=config.breaker_enabled)
    app.cleanup_ctx.append(upstream_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    config = GatewayConfig.from_env()
    LOG.info("starting gateway config=%s", json.dumps(asdict(config), sort_keys=True))
    web.run_app(build_app(config), host=config.host, port=config.port,
                shutdown_timeout=0.3, access_log=None, print=None)


if __name__ == "__main__":
    main()
