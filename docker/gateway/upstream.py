"""Calling the upstream: per-try and total timeouts, retries, and the circuit breaker.

Everything here happens before a single byte goes to the client, which is what makes
retrying safe; once the gateway starts streaming a response, app.py owns the exchange.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import time
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from yarl import URL

# isort: split
# Sibling modules: the Dockerfile copies them flat into /app next to app.py.
from breaker import CircuitBreaker
from config import GatewayConfig
from metrics import GatewayMetrics
from tls_serving import client_context

RETRYABLE_STATUSES = frozenset({502, 503, 504})
STORM_STATUSES = RETRYABLE_STATUSES | {429}  # GATEWAY_RETRY_AFTER=off: a retry storm
DEADLINE_HEADER = "X-Request-Timeout-Ms"  # the client's own budget (like grpc-timeout)
DEADLINE_MARGIN_S = 0.1  # answer this much before the client gives up
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_BACKOFF_S = 1.0
LLM_INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/messages",
                                 "/v1/embeddings"})
MAX_ERROR_BODY_BYTES = 1024 * 1024


class UpstreamError(Exception):
    """An upstream call failed before it produced a usable response."""

    def __init__(self, kind: str, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind  # connect | timeout | protocol
        self.retryable = retryable

    @property
    def is_timeout(self) -> bool:
        return self.kind == "timeout"


class CircuitOpenError(Exception):
    """The breaker refused the call; the upstream was not contacted."""


class UpstreamBackoff(Exception):
    """The upstream asked for a pause (429 + Retry-After) that has not elapsed yet."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"upstream asked to retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class BufferedReply:
    """A complete upstream answer held in memory (a 502/503/504 that retries did not fix)."""

    status: int
    reason: str | None
    headers: CIMultiDict[str]
    body: bytes


class RetryableStatus(Exception):
    """Upstream answered 502/503/504: worth another try for an idempotent request."""

    def __init__(self, reply: BufferedReply) -> None:
        super().__init__(f"upstream answered {reply.status}")
        self.reply = reply


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None
    llm_retries: bool = False  # GATEWAY_LLM_RETRIES: LLM inference POSTs may be repeated

    @property
    def idempotent(self) -> bool:
        """Only these may be retried: a repeated POST could charge a card twice."""
        if self.llm_retries and self.method == "POST" and self.url.path in LLM_INFERENCE_PATHS:
            return True  # no side effect but the bill: LLM gateways retry these
        return self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in self.headers


@dataclass
class Outcome:
    """What the retry loop ended with: exactly one of response, reply, error is set.

    attempts counts upstream calls actually made (a breaker refusal is not one)."""

    response: aiohttp.ClientResponse | None = None
    reply: BufferedReply | None = None
    error: UpstreamError | CircuitOpenError | UpstreamBackoff | None = None
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


class stop_at_deadline(stop_base):  # noqa: N801 - named like tenacity's own stop strategies
    """Stop when the next backoff sleep would end past the total deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


def _should_retry(exc: BaseException) -> bool:
    if isinstance(exc, UpstreamError):
        return exc.retryable
    return isinstance(exc, RetryableStatus)


def build_session(config: GatewayConfig, fresh: bool = False) -> aiohttp.ClientSession:
    """One pooled session for the process; sock_read doubles as the streaming idle timeout.

    fresh=True: a session that never reuses a connection, for retries. A pooled
    connection the upstream has already closed (its FIN still on the way) would fail
    the retry the same way it failed the first try."""
    timeouts = config.timeouts_enabled
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=config.connect_timeout_s if timeouts else None,
        # The body's idle timeout; response headers are bounded by the try budget anyway.
        sock_read=max(config.try_timeout_s, config.stream_idle_timeout_s) if timeouts else None,
    )
    session = aiohttp.ClientSession(
        # https:// upstreams: $TLS_CA alone when set (tls_serving), else the system's
        # trust store.
        connector=aiohttp.TCPConnector(limit=config.pool_size, force_close=fresh,
                                       ssl=client_context() or True),
        timeout=timeout,
        auto_decompress=False,  # pass bytes through untouched, Content-Encoding included
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        trust_env=False,
    )
    # aiohttp silently re-sends an idempotent request once after a reset or disconnect.
    # That hidden retry would escape GATEWAY_RETRIES=off, the retry counters and the
    # breaker, so switch it off (no public API; aiohttp's own test client does the same).
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class UpstreamClient:
    """Sends one client request to the upstream, retrying and breaking as configured."""

    def __init__(
        self,
        config: GatewayConfig,
        session: aiohttp.ClientSession,
        breaker: CircuitBreaker,
        metrics: GatewayMetrics,
        fresh_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.fresh_session = fresh_session or session
        self.breaker = breaker
        self.metrics = metrics
        self.hold_until = 0.0  # monotonic time before which the upstream asked for quiet

    def _deadline(self, request: OutgoingRequest, started: float,
                  client_started: float | None = None) -> float:
        """The total budget, shortened to the client's own when it states one."""
        if not self.config.timeouts_enabled:
            return float("inf")
        deadline = started + self.config.total_timeout_s
        client_t0 = started if client_started is None else client_started
        raw = request.headers.get(DEADLINE_HEADER)
        if raw and self.config.client_deadline_enabled:
            try:
                client_s = int(raw) / 1000
            except ValueError:
                client_s = 0.0
            if client_s > 0:
                deadline = min(deadline, client_t0 + max(0.05, client_s - DEADLINE_MARGIN_S))
        return deadline

    def _note_rate_limit(self, response: aiohttp.ClientResponse) -> None:
        """Honour an upstream 429's Retry-After: hold every request until it elapses."""
        if response.status != 429 or not self.config.retry_after_enabled:
            return
        pause = retry_after_seconds(response.headers)
        self.hold_until = max(self.hold_until, time.monotonic() + min(max(pause, 0.0), 60.0))

    async def send(self, request: OutgoingRequest, started: float,
                   client_started: float | None = None, defer_success: bool = False
                   ) -> Outcome:
        """Try until success, a non-retryable failure, max tries, or the total deadline.

        started: when this upstream's turn began (its total budget runs from there);
        client_started: when the client's request arrived (its stated budget runs from
        there), by default the same. defer_success: a streaming response's breaker verdict
        is the caller's (record_success, record_failure or abandon), not made here.

        The breaker judges whole requests, retries included: a request that a retry
        rescued is a success, so scattered connection resets do not trip it, while
        an upstream that fails every try opens it after a few requests.
        """
        outcome = Outcome(started=started)
        waiting = self.hold_until - time.monotonic()
        if waiting > 0 and self.config.retry_after_enabled:
            self.metrics.upstream_backoffs += 1
            outcome.error = UpstreamBackoff(waiting)
            return outcome
        if not self.breaker.try_acquire():
            self.metrics.breaker_rejections += 1
            outcome.error = CircuitOpenError("circuit breaker is open")
            return outcome
        deadline = self._deadline(request, started, client_started)
        tries = self.config.max_tries if request.idempotent else 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(tries) | stop_at_deadline(deadline),
            wait=wait_random_exponential(multiplier=self.config.backoff_s, max=MAX_BACKOFF_S),
            retry=retry_if_exception(_should_retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    answer = await self._attempt(request, deadline, outcome)
                    if isinstance(answer, BufferedReply):
                        outcome.reply = answer  # GATEWAY_STREAMING=off: read in full
                    else:
                        outcome.response = answer
        except RetryableStatus as exc:
            outcome.reply = exc.reply
        except UpstreamError as exc:
            outcome.error = exc
        except BaseException:
            self.breaker.abandon()  # cancelled because the client went away: no verdict
            raise
        # A 429 is a healthy upstream saying "not now": never a breaker failure.
        if outcome.response is not None and defer_success:
            pass  # the caller judges the stream once its first token came (or did not)
        elif outcome.response is not None or (outcome.reply is not None
                                            and outcome.reply.status not in RETRYABLE_STATUSES):
            self.breaker.record_success()
        else:
            self.breaker.record_failure()
        return outcome

    async def _attempt(
        self, request: OutgoingRequest, deadline: float, outcome: Outcome
    ) -> aiohttp.ClientResponse | BufferedReply:
        """One upstream call up to response headers, bounded by try and total timeouts."""
        outcome.attempts += 1
        self.metrics.upstream_attempts += 1
        if outcome.attempts > 1:
            self.metrics.retries += 1
        if self.config.timeouts_enabled:
            budget = min(self.config.try_timeout_s, deadline - time.monotonic())
        else:
            budget = float("inf")
        try:
            session = self.fresh_session if outcome.attempts > 1 else self.session
            response = await self._request_with_budget(request, budget, session)
            self._note_rate_limit(response)
            retryable = RETRYABLE_STATUSES if self.config.retry_after_enabled else STORM_STATUSES
            if response.status in retryable:
                self.metrics.upstream_failures["status"] += 1
                raise RetryableStatus(await self._buffer(response, budget))
            if not self.config.streaming_enabled:
                return await self._read_whole(response, budget)
        except UpstreamError as exc:
            self.metrics.upstream_failures[exc.kind] += 1
            raise
        return response

    async def _read_whole(self, response: aiohttp.ClientResponse, budget: float
                          ) -> BufferedReply:
        """GATEWAY_STREAMING=off: the whole body must arrive within the try's budget."""
        body = bytearray()
        try:
            async with asyncio.timeout(None if budget == float("inf") else budget):
                async for chunk in response.content.iter_any():
                    body += chunk
        except TimeoutError:
            response.close()
            raise UpstreamError("timeout", f"body not read within {budget * 1000:.0f} ms"
                                ) from None
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError("connect", _describe(exc)) from None
        response.release()
        return BufferedReply(response.status, response.reason, CIMultiDict(response.headers),
                             bytes(body))

    async def _request_with_budget(
        self, request: OutgoingRequest, budget: float, session: aiohttp.ClientSession
    ) -> aiohttp.ClientResponse:
        """Map aiohttp's many exceptions onto timeout / connect / protocol failures."""
        if budget <= 0:
            raise UpstreamError("timeout", "total timeout exhausted before the upstream answered")
        try:
            async with asyncio.timeout(None if budget == float("inf") else budget):
                return await session.request(
                    request.method, request.url, headers=request.headers,
                    data=request.body, allow_redirects=False,
                )
        except TimeoutError:
            message = f"upstream did not answer within {budget * 1000:.0f} ms"
            raise UpstreamError("timeout", message) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise UpstreamError("connect", _describe(exc)) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("protocol", _describe(exc), retryable=False) from None

    async def _buffer(self, response: aiohttp.ClientResponse, budget: float) -> BufferedReply:
        """Read a (small) error body so the connection can be reused or the reply relayed."""
        body = bytearray()
        try:
            async with asyncio.timeout(None if budget == float("inf") else max(budget, 0.1)):
                async for chunk in response.content.iter_any():
                    body += chunk
                    if len(body) >= MAX_ERROR_BODY_BYTES:
                        break
        except (TimeoutError, aiohttp.ClientError):
            pass  # the status is what matters; a partial body is still worth relaying
        finally:
            response.release()
        return BufferedReply(response.status, response.reason,
                             CIMultiDict(response.headers), bytes(body))


def retry_after_seconds(headers: CIMultiDictProxy[str] | CIMultiDict[str],
                        default: float = 1.0) -> float:
    """retry-after-ms (OpenAI's), else Retry-After in seconds or as an HTTP-date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
