"""Reference gateway: a reverse proxy that handles upstream failure the right way.

Forwards everything under / (except its own /healthz and /metrics) to UPSTREAM_URL with
per-try and total timeouts, retries with jittered exponential backoff for idempotent
requests only, a circuit breaker, 502/503/504 JSON errors instead of resets, streaming
pass-through (SSE included) and a request size limit. Each mechanism can be switched off
(see config.py) so chaos scenarios can show the failure a gateway without it produces.

Provider fallback chains (LLM gateways, issue 20); GATEWAY_RESILIENCE=off turns the
switches below off too:

- FALLBACK_URLS: ordered, comma-separated base URLs (http://host:port) tried after
  UPSTREAM_URL. Each provider has its own retries (idempotent requests are retried on the
  same provider first, as GATEWAY_MAX_TRIES says, then the next provider is tried), its
  own circuit breaker (open = skipped without a call) and its own Retry-After cooldown (a
  provider that answered 429 is skipped until its Retry-After, retry-after-ms or HTTP-date
  passed). With every provider skipped the client gets the refusal that ends soonest (429
  with Retry-After, or 503 circuit_open); with every one failed, the last one's failure.
  gateway_breaker_state is the primary's breaker.
- GATEWAY_FALLBACK=off: the mutant switch, no fallback at all (the primary only, its error
  goes to the client).
- GATEWAY_FALLBACK_ON: the error classes that move a request on, comma-separated; default
  rate_limit,overloaded,server_error,timeout,first_token_timeout,content_policy. rate_limit
  = 429, overloaded = 529 or 503, server_error = other 5xx, timeout = connect or read
  timeout, first_token_timeout, connection = reset/refused, content_policy = 400
  content_policy_violation or 200 finish_reason content_filter (non-stream, or a stream's
  finish before any token; after one, the stream is the client's). Any other 4xx (400
  context_length_exceeded included) is never retried nor falls back: the client gets it
  as the provider sent it. bad_request (any other 400 with a body) is never in the
  default: listing it is the mutant of a gateway that falls back on every 400
  (scenarios/llm-context-length.yaml).
- GATEWAY_FIRST_TOKEN_TIMEOUT (ms, default off): an SSE answer is held back until its first
  content token (whenever there is a fallback, or this is set); one that brings none within
  this time of its provider's turn is abandoned and the next provider tried, or answered
  504 first_token_timeout with a JSON body. Off (or GATEWAY_TIMEOUTS=off): the idle
  timeout bounds the wait. A stream that dies, or whose provider sends an error event,
  before its first token falls back (or 502/504) the same way; the breaker counts it.
- GATEWAY_STREAM_IDLE_TIMEOUT (ms, default: GATEWAY_TRY_TIMEOUT_MS): the longest gap
  between body bytes. A stall after bytes reached the client, or a stream cut mid-way
  (an LLM stream the upstream ended with neither a finish_reason nor [DONE] included),
  ends with an in-band error event (`event: error` + `data: {"error": {...}}`, Anthropic's
  error event on /v1/messages), never a clean end that reads as a success; no provider
  is tried after a byte reached the client. So does an event whose data is not JSON (a
  malformed chunk, not relayed; before the first token it is a server_error that falls
  back), and a stream the provider finished (finish_reason / stop_reason) but ended
  without its terminator gets one ([DONE], message_stop), so a complete answer reads as
  complete. GATEWAY_STREAM_ERRORS=off: none of this, the stream is passed on as it came.
  GATEWAY_STREAM_ERRORS=swallow: the mutant of a gateway that hides a provider's failure
  (scenarios/sse-midstream-error.yaml): as off, and every in-band error event the provider
  sends (`data: {"error": {...}}`, Anthropic's `event: error`) is dropped, so a stream the
  provider failed mid-way ends cleanly, as if complete, with nothing telling the client.
- GATEWAY_LLM_RETRIES (default off): LLM inference POSTs (/v1/chat/completions,
  /v1/completions, /v1/messages, /v1/embeddings) are retried on the same provider like
  idempotent requests (GATEWAY_MAX_TRIES, backoff, 502/503/504 and connection failures;
  a 429 only with GATEWAY_RETRY_AFTER=off). Off: one try per provider, then the next.
- GATEWAY_TPM (tokens per minute, default off): the gateway's own token rate limit over
  prompt (characters / 4) + max_tokens of each LLM request (a JSON body with messages or
  prompt), a token bucket refilled continuously; over it: 429 rate_limit_exceeded with
  Retry-After and x-ratelimit-limit/-remaining/-reset-tokens.
- TLS_DIR (unset: plain HTTP): serve clients TLS with the certificate in that folder,
  re-read on SIGHUP (tls_serving.py); TLS_RELOAD=drop: that reload resets every open
  client connection (the mutant of a gateway that rotates by restarting). TLS_CA (unset:
  the system's store): the CA bundle https:// upstreams must verify against; a failed
  upstream handshake is a 502 naming it. KEEPALIVE_MAX_REQUESTS (0: no cap): a client
  connection is closed after that many requests (connections.py), as nginx's
  keepalive_requests.

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
from fallback import (
    MalformedChunk,
    Provider,
    StreamEndedEarly,
    StreamWatch,
    classify_error,
    classify_status,
    first_token,
    hold_reply,
    needs_peek,
    peek_body,
    provider_name,
    terminator,
)
from llm_limits import TokenBucket, estimate_tokens
from metrics import GatewayMetrics
from tls_serving import serve
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
FALLBACKS_HEADER = "X-Gateway-Fallbacks"  # providers passed over (debug: verdicts never read it)

CONFIG_KEY = web.AppKey("config", GatewayConfig)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
BREAKER_KEY = web.AppKey("breaker", CircuitBreaker)
UPSTREAM_KEY = web.AppKey("upstream", UpstreamClient)
CHAIN_KEY = web.AppKey("chain", list[Provider])
TPM_KEY = web.AppKey("tpm", TokenBucket)
BREAKER_IN_USE = "gateway_breaker"  # request-scoped: the breaker of the provider streaming
OUTCOME_KEY = "gateway_outcome"  # request-scoped: "reset" when the client got an RST


class PayloadTooLarge(Exception):
    """The client's body exceeded GATEWAY_MAX_BODY_BYTES."""


# ---------------------------------------------------------------- responses and resets


def json_error(status: int, kind: str, message: str, retries: int = 0,
               headers: dict[str, str] | None = None, fallbacks: int = 0) -> web.Response:
    """Every gateway-made error is JSON, so clients can tell it from an upstream body."""
    extra = dict(headers or {})
    if retries:
        extra[RETRIES_HEADER] = str(retries)
    if fallbacks:
        extra[FALLBACKS_HEADER] = str(fallbacks)
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
    return OutgoingRequest(request.method, url, headers, body,
                           request.app[CONFIG_KEY].llm_retries_enabled)


# ---------------------------------------------------------------- response side


def is_event_stream(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    return headers.get("Content-Type", "").lower().startswith("text/event-stream")


def answer_failure(request: web.Request, outcome: Outcome,
                   breaker: CircuitBreaker | None = None, retries: int | None = None,
                   fallbacks: int = 0) -> web.Response:
    """Turn a failure that happened before any response byte into 502/503/504 (or an RST)."""
    config = request.app[CONFIG_KEY]
    error = outcome.error
    retries = outcome.retries if retries is None else retries
    if isinstance(error, CircuitOpenError):
        breaker = breaker or request.app[BREAKER_KEY]
        return json_error(503, "circuit_open", "upstream circuit breaker is open",
                          retries, {"Retry-After": breaker.retry_after_header()}, fallbacks)
    if isinstance(error, UpstreamBackoff):
        return json_error(429, "upstream_rate_limited", str(error), retries,
                          {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))},
                          fallbacks)
    assert isinstance(error, UpstreamError)
    if not config.error_mapping_enabled:
        return reset_client(request)
    if error.is_timeout:
        return json_error(504, "gateway_timeout", str(error), retries, fallbacks=fallbacks)
    return json_error(502, "bad_gateway", str(error), retries, fallbacks=fallbacks)


class ErrorSwallower:
    """GATEWAY_STREAM_ERRORS=swallow: relays an SSE body event by event, minus the
    provider's in-band error events. A partial event is held until its blank line."""

    def __init__(self) -> None:
        self.dropped = 0
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        text = (self._pending + chunk).replace(b"\r\n", b"\n")
        *events, self._pending = text.split(b"\n\n")
        return b"".join(self._keep(event + b"\n\n") for event in events)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._keep(rest) if rest.strip() else rest

    def _keep(self, event: bytes) -> bytes:
        if not is_error_event(event):
            return event
        self.dropped += 1
        return b""


def is_error_event(event: bytes) -> bool:
    """An SSE event that reports a failure: `event: error`, or data that is a JSON object
    with an `error` object (OpenAI) or `"type": "error"` (Anthropic)."""
    lines = event.decode("utf-8", "replace").splitlines()
    if any(line.strip() == "event: error" for line in lines):
        return True
    data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return isinstance(doc, dict) and (isinstance(doc.get("error"), dict)
                                      or doc.get("type") == "error")


def relay_buffered(reply: BufferedReply, retries: int, fallbacks: int = 0) -> web.Response:
    """Relay an upstream answer held in memory (a 502/503/504 retries did not fix, or one
    read whole to classify it)."""
    headers = filtered_headers(CIMultiDictProxy(reply.headers), frozenset({"content-length"}))
    if retries:
        headers[RETRIES_HEADER] = str(retries)
    if fallbacks:
        headers[FALLBACKS_HEADER] = str(fallbacks)
    return web.Response(status=reply.status, reason=reply.reason, headers=headers,
                        body=reply.body)


async def relay_stream(request: web.Request, upstream: aiohttp.ClientResponse,
                       retries: int, started: float, prefix: bytes = b"",
                       fallbacks: int = 0) -> web.StreamResponse:
    """Copy the upstream body to the client chunk by chunk, as it arrives.

    Only the idle timeout (sock_read, or GATEWAY_STREAM_IDLE_TIMEOUT) bounds a body: a
    long LLM stream that keeps producing tokens must survive. GATEWAY_LONG_STREAMS=off
    applies the total timeout to the body as well, like a proxy whose read timeout covers
    the whole response. prefix: bytes already read (held back until the first token)."""
    config = request.app[CONFIG_KEY]
    body_deadline = None if config.long_streams_enabled else started + config.total_timeout_s
    idle_s = config.stream_idle_timeout_s if config.timeouts_enabled else 0.0
    sse = is_event_stream(upstream.headers)
    drop = frozenset({"content-length"}) if sse else frozenset()
    headers = filtered_headers(upstream.headers, drop)
    if retries:
        headers[RETRIES_HEADER] = str(retries)
    if fallbacks:
        headers[FALLBACKS_HEADER] = str(fallbacks)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=headers)
    completed = False
    # An LLM stream that ends with neither a finish nor [DONE] was cut, even if its
    # upstream closed it cleanly: the client must not read it as a success.
    watch = StreamWatch() if sse and config.stream_errors_enabled else None
    swallow = ErrorSwallower() if sse and config.stream_errors_swallowed else None
    try:
        await response.prepare(request)
        if swallow is not None:
            prefix = swallow.feed(prefix)
        if prefix:
            await response.write(prefix)
            if watch is not None:
                watch.feed(prefix)
        while True:
            try:
                limit = None if body_deadline is None else max(0.0,
                                                               body_deadline - time.monotonic())
                if idle_s:
                    limit = idle_s if limit is None else min(limit, idle_s)
                if limit is None:
                    chunk = await upstream.content.readany()
                else:
                    async with asyncio.timeout(limit):
                        chunk = await upstream.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return await end_broken_stream(request, response, sse, exc)
            if not chunk:
                if swallow is not None:
                    await response.write(swallow.flush())
                    if swallow.dropped:
                        request[OUTCOME_KEY] = "error_swallowed"
                if watch is not None and watch.ended_early:
                    return await end_broken_stream(request, response, sse, StreamEndedEarly())
                if watch is not None and watch.needs_terminator:
                    await response.write(terminator(request.path))
                break
            if watch is not None:
                watch.feed(chunk)
                if watch.malformed:  # not relayed: the stream ends with the error event
                    return await end_broken_stream(request, response, sse, MalformedChunk())
            if swallow is not None:
                chunk = swallow.feed(chunk)
            if chunk:
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
    request.get(BREAKER_IN_USE, app[BREAKER_KEY]).record_failure()
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
        await response.write(inband_error(request.path, exc))
        await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # flush what was sent, then FIN: body visibly truncated
    return response


def inband_error(path: str, exc: BaseException) -> bytes:
    """The error event a stream ends with when its upstream stalled or was cut: OpenAI's
    `data: {"error": {...}}` (Anthropic's error event on /v1/messages), never a clean end."""
    stalled = isinstance(exc, TimeoutError)
    kind = "upstream_timeout" if stalled else "upstream_disconnected"
    message = (f"upstream {'stalled' if stalled else 'failed'} mid-stream: "
               f"{type(exc).__name__}")
    if path.rstrip("/").endswith("/messages"):
        event: dict[str, object] = {"type": "error",
                                    "error": {"type": "api_error", "message": message}}
    else:
        event = {"error": {"type": kind, "code": kind, "message": message}}
    return f"event: error\ndata: {json.dumps(event)}\n\n".encode()


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
    bucket = request.app.get(TPM_KEY)
    if bucket is not None:
        cost = estimate_tokens(body)
        refusal = bucket.take(cost) if cost is not None else None
        if refusal is not None:
            request.app[METRICS_KEY].tpm_rejections += 1
            what = ("request needs more tokens than the gateway's limit allows"
                    if refusal.too_large else "gateway token rate limit reached")
            return json_error(429, "rate_limit_exceeded",
                              f"{what}: {refusal.cost} tokens (prompt + max_tokens), "
                              f"limit {bucket.tpm}/min", headers=bucket.headers(refusal))
    chain = request.app[CHAIN_KEY]
    return await serve_chain(request, chain if config.fallback_enabled else chain[:1],
                             body, started)


Answer = Callable[[], web.StreamResponse]


async def serve_chain(request: web.Request, chain: list[Provider], body: bytes | None,
                      started: float) -> web.StreamResponse:
    """Walk the providers in order until one answers with something to relay.

    Each provider first gets its own retries (upstream.py); a provider in a Retry-After
    cooldown or behind an open breaker is skipped without a call. A failure whose class is
    in GATEWAY_FALLBACK_ON moves the request on to the next provider; anything else (a 400,
    a success) is relayed. Once a byte reached the client there is no going back: the
    first-token gate holds a stream back until its first content token so that a slow or
    dead start can still fall back. With no provider left, the client gets the last
    provider's failure (or, all skipped, the refusal that ends soonest)."""
    config = request.app[CONFIG_KEY]
    metrics = request.app[METRICS_KEY]
    gating = config.first_token_timeout_s > 0 or len(chain) > 1
    retries = passed = 0
    last_failure: Answer | None = None
    refusals: list[tuple[float, Provider, Outcome]] = []
    for index, provider in enumerate(chain):
        has_next = index + 1 < len(chain)
        turn_started = time.monotonic()
        # A stream held back for its first token gets its breaker verdict after the gate.
        outcome = await provider.client.send(outgoing_request(request, provider.url, body),
                                             turn_started, started, defer_success=gating)
        retries += outcome.retries
        gated = gating and outcome.response is not None and _gated(outcome.response)
        if gating and outcome.response is not None and not gated:
            provider.breaker.record_success()
        if outcome.attempts == 0:  # refused here: Retry-After cooldown or open breaker
            backoff = isinstance(outcome.error, UpstreamBackoff)
            metrics.provider_skips["cooldown" if backoff else "breaker"] += 1
            wait = (outcome.error.retry_after_s if isinstance(outcome.error, UpstreamBackoff)
                    else provider.breaker.retry_after_s())
            refusals.append((wait, provider, outcome))
            passed += 1
            continue

        kind: str | None
        if outcome.error is not None:
            kind = classify_error(outcome.error)
            if not _moves(config, has_next, kind):
                return answer_failure(request, outcome, provider.breaker, retries, passed)
            last_failure = _later(answer_failure, request, outcome, provider.breaker,
                                  retries, passed)
        elif outcome.reply is not None:
            kind = classify_status(outcome.reply.status, outcome.reply.body)
            if not _moves(config, has_next, kind):
                return relay_buffered(outcome.reply, retries, passed)
            last_failure = _later(relay_buffered, outcome.reply, retries, passed)
        else:
            upstream = outcome.response
            assert upstream is not None
            kind = classify_status(upstream.status, None)
            if kind is None and needs_peek(upstream.status, upstream.headers, request.path) \
                    and (_moves(config, has_next, "content_policy")
                         or (upstream.status == 400 and _moves(config, has_next, "bad_request"))):
                try:
                    peeked, complete = await peek_body(upstream)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    outcome.response, outcome.error = None, UpstreamError(
                        "timeout" if isinstance(exc, TimeoutError) else "connect",
                        f"upstream body failed: {type(exc).__name__}")
                    kind = classify_error(outcome.error)
                    if not _moves(config, has_next, kind):
                        return answer_failure(request, outcome, provider.breaker, retries, passed)
                    last_failure = _later(answer_failure, request, outcome, provider.breaker,
                                          retries, passed)
                else:
                    if not complete:  # too big to hold: relayed as it comes, unjudged
                        request[BREAKER_IN_USE] = provider.breaker
                        return await relay_stream(request, upstream, retries, started, peeked,
                                                  passed)
                    reply = BufferedReply(upstream.status, upstream.reason,
                                          CIMultiDict(upstream.headers), peeked)
                    kind = classify_status(reply.status, reply.body)
                    if not _moves(config, has_next, kind):
                        return relay_buffered(reply, retries, passed)
                    last_failure = _later(relay_buffered, reply, retries, passed)
            elif _moves(config, has_next, kind):
                # keep the error to relay it if every later provider is skipped
                reply = await hold_reply(upstream, config.try_timeout_s)
                last_failure = _later(relay_buffered, reply, retries, passed)
            elif gated:
                deadline = (turn_started + config.first_token_timeout_s
                            if config.first_token_timeout_s > 0 else None)
                try:
                    gate = await first_token(upstream, deadline)
                except BaseException:
                    provider.breaker.abandon()  # the client went away: no verdict
                    upstream.close()
                    raise
                kind = gate.failure
                if kind in (None, "content_policy", "rate_limit"):
                    provider.breaker.record_success()  # the provider itself is healthy
                else:
                    provider.breaker.record_failure()
                if kind is None or (not _moves(config, has_next, kind) and not upstream.closed):
                    request[BREAKER_IN_USE] = provider.breaker
                    return await relay_stream(request, upstream, retries, started,
                                              bytes(gate.prefix), passed)
                upstream.close()
                metrics.upstream_failures[kind] += 1
                status = 504 if kind in ("first_token_timeout", "timeout") else 502
                answer = _later(json_error, status, kind, f"{provider.name}: {gate.detail}",
                                retries, None, passed)
                if not _moves(config, has_next, kind):
                    return answer()
                last_failure = answer
            else:
                request[BREAKER_IN_USE] = provider.breaker
                return await relay_stream(request, upstream, retries, started, b"", passed)
        metrics.fallbacks[kind or "unknown"] += 1
        LOG.info("falling back from %s (%s)", provider.name, kind)
        passed += 1
    if last_failure is not None:
        return last_failure()
    _wait, provider, outcome = min(refusals, key=lambda item: item[0])
    return answer_failure(request, outcome, provider.breaker, retries, len(chain) - 1)


def _gated(upstream: aiohttp.ClientResponse) -> bool:
    """A stream held back until its first content token (a 2xx SSE answer)."""
    return 200 <= upstream.status < 300 and is_event_stream(upstream.headers)


def _moves(config: GatewayConfig, has_next: bool, kind: str | None) -> bool:
    """Does a failure of this class move the request on? Only with a provider left."""
    return has_next and kind is not None and kind in config.fallback_on


def _later(func: Callable[..., web.StreamResponse], *args: object) -> Answer:
    """An answer built only if it is the one sent (reset_client acts when called)."""
    return lambda: func(*args)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    chain = [(p.name, p.breaker) for p in request.app.get(CHAIN_KEY, [])]
    text = request.app[METRICS_KEY].render(request.app[BREAKER_KEY], chain)
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
    config = app[CONFIG_KEY]
    session = build_session(config)
    fresh = build_session(config, fresh=True)  # retries never reuse a connection
    app[UPSTREAM_KEY] = UpstreamClient(config, session, app[BREAKER_KEY],
                                       app[METRICS_KEY], fresh)
    chain = [Provider(provider_name(config.upstream_url), config.upstream_url,
                      app[UPSTREAM_KEY], app[BREAKER_KEY])]
    for url in config.fallback_urls:  # each its own breaker and Retry-After cooldown
        breaker = CircuitBreaker(config.breaker_failures, config.breaker_open_s,
                                 enabled=config.breaker_enabled)
        client = UpstreamClient(config, session, breaker, app[METRICS_KEY], fresh)
        chain.append(Provider(provider_name(url), url, client, breaker))
    app[CHAIN_KEY] = chain
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
    if config.tpm:
        app[TPM_KEY] = TokenBucket(config.tpm)
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
    app = build_app(config)
    context = serve(app)  # None: plain HTTP
    web.run_app(app, host=config.host, port=config.port, ssl_context=context,
                shutdown_timeout=0.3, access_log=None, print=None)


if __name__ == "__main__":
    main()
