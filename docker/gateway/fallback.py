"""Provider fallback chains: which failures move a request on, and the first-token gate.

A chain is UPSTREAM_URL then FALLBACK_URLS in order; each provider has its own upstream
client (its own retries, Retry-After cooldown and circuit breaker). app.py walks the chain;
this module says what an answer was (its error class) and holds a stream back until its
first content token, because until then nothing has reached the client and the request
can still go to the next provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

# isort: split
# Sibling modules: the Dockerfile copies them flat into /app next to app.py.
from breaker import CircuitBreaker
from upstream import LLM_INFERENCE_PATHS, BufferedReply, UpstreamClient, UpstreamError

MAX_PEEK_BYTES = 1024 * 1024  # bodies read to classify them (errors, non-stream answers)
CONTENT_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})


@dataclass
class Provider:
    """One link of the chain."""

    name: str  # host:port, what the log says
    url: str
    client: UpstreamClient
    breaker: CircuitBreaker


def provider_name(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


# ---------------------------------------------------------------- error classes


def classify_error(error: BaseException | None) -> str | None:
    """An upstream call that produced no response: timeout or connection."""
    if isinstance(error, UpstreamError):
        return "timeout" if error.is_timeout else "connection"
    return None


def classify_status(status: int, body: bytes | None) -> str | None:
    """rate_limit = 429, overloaded = 529/503, server_error = other 5xx, content_policy =
    a 400 content_policy_violation or a 200 whose finish_reason is content_filter."""
    if status == 429:
        return "rate_limit"
    if status in (503, 529):
        return "overloaded"
    if 500 <= status <= 599:
        return "server_error"
    if status == 400 and body and _error_code(body) in CONTENT_POLICY_CODES:
        return "content_policy"
    if 200 <= status < 300 and body and _finish_reason(body) == "content_filter":
        return "content_policy"
    if status == 400 and body:
        return "bad_request"  # context_length_exceeded & co: only ever moves when listed
    return None


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _error_code(body: bytes) -> str | None:
    """OpenAI's {"error": {"code", "type"}} or Anthropic's {"type": "error", "error": {...}}."""
    doc = _json(body)
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None
    return _error_kind(error) or None


def _error_kind(error: dict[str, object]) -> str:
    """An error object's code, else its type; a content-policy one in either wins."""
    for key in ("code", "type"):
        value = error.get(key)
        if isinstance(value, str) and value in CONTENT_POLICY_CODES:
            return value
    return str(error.get("code") or error.get("type") or "")


def _finish_reason(body: bytes) -> str | None:
    doc = _json(body)
    if not isinstance(doc, dict):
        return None
    choices = doc.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def needs_peek(status: int, headers: CIMultiDictProxy[str], path: str) -> bool:
    """Answers whose class depends on their body: a 400, or a 2xx JSON (non-stream) answer
    of an LLM inference call."""
    if status == 400:
        return True
    content_type = headers.get("Content-Type", "").lower()
    return 200 <= status < 300 and content_type.startswith("application/json") \
        and path in LLM_INFERENCE_PATHS


async def peek_body(response: aiohttp.ClientResponse, budget_s: float | None = None
                    ) -> tuple[bytes, bool]:
    """(body, complete): read a body into memory, at most MAX_PEEK_BYTES (then it is not
    complete and the caller relays the rest as a stream). budget_s bounds the whole read;
    without it only the session's idle timeout does (a slow link's big answer survives).
    A failure closes the response and is raised."""
    body = bytearray()
    try:
        async with asyncio.timeout(budget_s if budget_s else None):
            while len(body) <= MAX_PEEK_BYTES:
                chunk = await response.content.readany()
                if not chunk:
                    response.release()
                    return bytes(body), True
                body += chunk
    except (TimeoutError, aiohttp.ClientError):
        response.close()
        raise
    return bytes(body), False


async def hold_reply(response: aiohttp.ClientResponse, budget_s: float) -> BufferedReply:
    """An error answer kept in memory (a partial body is still worth relaying)."""
    try:
        body, complete = await peek_body(response, budget_s)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    else:
        if not complete:
            response.close()
    return BufferedReply(response.status, response.reason, CIMultiDict(response.headers), body)


# ---------------------------------------------------------------- the first-token gate


@dataclass
class Gate:
    """What came before the first content token: the bytes held back, and why it ended."""

    prefix: bytearray = field(default_factory=bytearray)
    failure: str | None = None  # an error class: the stream must not reach the client
    detail: str = ""
    ended: bool = False  # the upstream finished (legitimately) before any token


def _event_class(data: str) -> tuple[bool, str | None]:
    """(is it content, failure class) for one SSE data payload."""
    if data.strip() == "[DONE]":
        return False, None
    doc = _json(data.encode())
    if not isinstance(doc, dict):
        return True, None  # not an LLM chunk (a plain SSE feed): the first event counts
    error = doc.get("error")
    if isinstance(error, dict) or doc.get("type") == "error":
        kind = _error_kind(error if isinstance(error, dict) else {})
        if kind in CONTENT_POLICY_CODES:
            return False, "content_policy"
        if "rate_limit" in kind:
            return False, "rate_limit"
        if "overloaded" in kind:
            return False, "overloaded"
        return False, "server_error"
    choices = doc.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")
                                            or delta.get("function_call")):
                return True, None
            if choice.get("finish_reason") == "content_filter":
                return False, "content_policy"
        return False, None
    event_type = doc.get("type")
    if isinstance(event_type, str):  # Anthropic's event types
        return event_type == "content_block_delta", None
    return True, None


class SSEEvents:
    """Complete SSE events out of a byte stream: CRLF line ends folded to LF (also one
    split across chunks), a partial event held until its blank line."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events this chunk completes, without their blank line."""
        self.pending += chunk
        if b"\r\n" in self.pending:
            self.pending = self.pending.replace(b"\r\n", b"\n")
        if b"\n\n" not in self.pending:
            return []
        *events, rest = self.pending.split(b"\n\n")
        self.pending = rest
        return [bytes(event) for event in events]


def _data_lines(event: bytes) -> str:
    lines = event.decode("utf-8", "replace").splitlines()
    return "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))


async def first_token(response: aiohttp.ClientResponse, deadline: float | None) -> Gate:
    """Read SSE events until one carries content; hold them back meanwhile.

    deadline (monotonic) bounds the wait (GATEWAY_FIRST_TOKEN_TIMEOUT); without one the
    session's idle timeout does. On any failure the upstream response is closed."""
    gate = Gate()
    events = SSEEvents()
    llm_seen = False  # an LLM chunk came: from then on a chunk that is not JSON is broken
    try:
        async with asyncio.timeout_at(_loop_time(deadline)):
            while True:
                chunk = await response.content.readany()
                if not chunk:
                    gate.ended = True
                    return gate
                gate.prefix += chunk
                for event in events.feed(chunk):
                    data = _data_lines(event)
                    if not data:
                        continue
                    if llm_seen and data.strip() != "[DONE]" and _json(data.encode()) is None:
                        gate.failure = "server_error"  # a chunk that is not JSON
                        gate.detail = "malformed chunk before the first token"
                        return gate
                    llm_seen = llm_seen or b'"choices"' in event or b'"type"' in event
                    content, failure = _event_class(data)
                    if failure is not None:  # left open: relayed as it is if no fallback
                        gate.failure = failure
                        gate.detail = f"in-stream {failure} before the first token"
                        return gate
                    if content:
                        return gate
                if len(gate.prefix) > MAX_PEEK_BYTES:
                    return gate  # a huge preamble: stop holding it back
    except TimeoutError:
        response.close()
        if deadline is not None and time.monotonic() >= deadline - 0.001:
            gate.failure, gate.detail = "first_token_timeout", "no first token in time"
        else:
            gate.failure, gate.detail = "timeout", "upstream idle before the first token"
    except aiohttp.ClientError as exc:
        response.close()
        gate.failure = "connection"
        gate.detail = f"upstream failed before the first token: {type(exc).__name__}"
    return gate


def _loop_time(deadline: float | None) -> float | None:
    """asyncio.timeout_at wants the loop's clock; the gateway keeps time.monotonic()."""
    if deadline is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


class StreamEndedEarly(Exception):
    """An LLM stream ended cleanly at the transport with neither a finish nor [DONE]."""


class MalformedChunk(Exception):
    """An LLM stream sent an event whose data is not JSON (a chunk cut inside itself)."""


class StreamWatch:
    """Follows a relayed SSE stream far enough to tell a finished LLM answer from one that
    merely stopped: a finish_reason / stop_reason, the terminator ([DONE], message_stop),
    or the provider's own error event (the client was told). Only events that mention
    them are parsed."""

    def __init__(self) -> None:
        self.llm = False  # OpenAI chunks or Anthropic events were seen
        self.finished = False
        self.terminated = False  # [DONE] / message_stop, or the provider's own error event
        self.malformed = False  # an event of an LLM stream whose data is not JSON
        self._events = SSEEvents()

    def feed(self, chunk: bytes) -> None:
        if len(self._events.pending) + len(chunk) > MAX_PEEK_BYTES:
            self._events.pending.clear()  # no event boundary in sight: give up
            return
        for event in self._events.feed(chunk):
            self._event(event)

    def _event(self, event: bytes) -> None:
        if b'"choices"' in event or b'"type"' in event:
            self.llm = True
        if b"[DONE]" in event or b"message_stop" in event:
            self.finished = self.terminated = True
            return
        data = _data_lines(event)
        if self.llm and data and _json(data.encode()) is None:
            self.malformed = True
            return
        if b"finish_reason" not in event and b"stop_reason" not in event \
                and b'"error"' not in event:
            return
        doc = _json(data.encode())
        if not isinstance(doc, dict):
            return
        if isinstance(doc.get("error"), dict):  # the provider's own in-band error: told
            self.finished = self.terminated = True
            return
        delta = doc.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            self.finished = True
        choices = doc.get("choices")
        if isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason")
                                             for c in choices):
            self.finished = True

    @property
    def ended_early(self) -> bool:
        return self.llm and not self.finished

    @property
    def needs_terminator(self) -> bool:
        """The provider finished the answer (a finish_reason / stop_reason) but ended the
        stream without its terminator: the gateway adds it, so clients that wait for
        [DONE] (or message_stop) see a complete answer, not a truncated one."""
        return self.llm and self.finished and not self.terminated


def terminator(path: str) -> bytes:
    """The end-of-stream event of the stream's API."""
    if path.rstrip("/").endswith("/messages"):
        return b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    return b"data: [DONE]\n\n"
