"""Calling the upstream: per-try and total timeouts, retries, and the circuit breaker.

Everything here happens before a single byte goes to the client, which is what makes
retrying safe; once the gateway starts streaming a response, app.py owns the exchange.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict
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

RETRYABLE_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_BACKOFF_S = 1.0
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

    @property
    def idempotent(self) -> bool:
        """Only these may be retried: a repeated POST could charge a card twice."""
        return self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in self.headers


@dataclass
class Outcome:
    """What the retry loop ended with: exactly one of response, reply, error is set.

    attempts counts upstream calls actually made (a breaker refusal is not one)."""

    response: aiohttp.ClientResponse | None = None
    reply: BufferedReply | None = None
    error: UpstreamError | CircuitOpenError | None = None
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


def build_session(config: GatewayConfig) -> aiohttp.ClientSession:
    """One pooled session for the process; sock_read doubles as the streaming idle timeout."""
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=config.connect_timeout_s,
        sock_read=config.try_timeout_s,
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=config.pool_size),
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
    ) -> None:
        self.config = config
        self.session = session
        self.breaker = breaker
        self.metrics = metrics

    async def send(self, request: OutgoingRequest, started: float) -> Outcome:
        """Try until success, a non-retryable failure, max tries, or the total deadline.

        The breaker judges whole requests, retries included: a request that a retry
        rescued is a success, so scattered connection resets do not trip it, while
        an upstream that fails every try opens it after a few requests.
        """
        outcome = Outcome(started=started)
        if not self.breaker.try_acquire():
            self.metrics.breaker_rejections += 1
            outcome.error = CircuitOpenError("circuit breaker is open")
            return outcome
        deadline = started + self.config.total_timeout_s
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
                    outcome.response = await self._attempt(request, deadline, outcome)
        except RetryableStatus as exc:
            outcome.reply = exc.reply
        except UpstreamError as exc:
            outcome.error = exc
        except BaseException:
            self.breaker.abandon()  # cancelled because the client went away: no verdict
            raise
        if outcome.response is not None:
            self.breaker.record_success()
        else:
            self.breaker.record_failure()
        return outcome

    async def _attempt(
        self, request: OutgoingRequest, deadline: float, outcome: Outcome
    ) -> aiohttp.ClientResponse:
        """One upstream call up to response headers, bounded by try and total timeouts."""
        outcome.attempts += 1
        self.metrics.upstream_attempts += 1
        if outcome.attempts > 1:
            self.metrics.retries += 1
        budget = min(self.config.try_timeout_s, deadline - time.monotonic())
        try:
            response = await self._request_with_budget(request, budget)
        except UpstreamError as exc:
            self.metrics.upstream_failures[exc.kind] += 1
            raise
        if response.status in RETRYABLE_STATUSES:
            self.metrics.upstream_failures["status"] += 1
            raise RetryableStatus(await self._buffer(response, budget))
        return response

    async def _request_with_budget(
        self, request: OutgoingRequest, budget: float
    ) -> aiohttp.ClientResponse:
        """Map aiohttp's many exceptions onto timeout / connect / protocol failures."""
        if budget <= 0:
            raise UpstreamError("timeout", "total timeout exhausted before the upstream answered")
        try:
            async with asyncio.timeout(budget):
                return await self.session.request(
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
            async with asyncio.timeout(max(budget, 0.1)):
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


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
