"""What did the client see? One outcome class per request.

A reset reaching the client is the failure this tool exists to catch; a
502/503/504/429 with a body is the graceful answer. The order of the checks
matters: http.client.RemoteDisconnected subclasses ConnectionResetError, yet a
clean close without a response is not a reset.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Iterator, Mapping

from chaos.load.sse import EventReader, StreamStats, answer_fields
from chaos.load.tls import Handshake, refusal
from chaos.outcomes import (  # noqa: F401 - the vocabulary, re-exported for old importers
    ALIASES,
    CLOSED,
    CONNECT_TIMEOUT,
    COUNT_BOUNDS,
    GRACEFUL,
    INBAND_ERROR,
    OK,
    OK_AFTER_RETRY,
    OTHER,
    OUTCOMES,
    READ_TIMEOUT,
    REFUSED,
    RESET,
    STREAM_STALLED,
    SUCCESSES,
    TLS_HANDSHAKE_FAILED,
    TRUNCATED,
    TRUNCATED_SUCCESS,
)

GRACEFUL_STATUSES = frozenset({500, 501, 502, 503, 504, 429})
SSE_TERMINATOR = b"data: [DONE]"


def classify_response(status: int, headers: Mapping[str, str], body: bytes,
                      retry_header: str = "X-Gateway-Retries") -> tuple[str, str]:
    """Classify a request that got an HTTP response (status > 0)."""
    if status in GRACEFUL_STATUSES:
        if body.strip():
            return GRACEFUL, str(status)
        return OTHER, f"HTTP {status} without a body"
    if 200 <= status < 400:
        content_type = _header(headers, "content-type").lower()
        if content_type.startswith("text/event-stream"):
            stats = StreamStats(0.0)
            reader = EventReader()
            for event in reader.feed(body):
                stats.add(event, 0.0)
            for event in reader.close():
                stats.add(event, 0.0, final=True)
            return classify_stream(status, headers, stats, retry_header)
        if not _framed(status, headers, body):
            return TRUNCATED, "response ended before its headers were complete"
        if b'"error"' in body and content_type.startswith("application/json"):
            error = answer_fields(body).get("error")
            if error:
                return INBAND_ERROR, f"{status} body carries an error object: {error}"
        if _retries(headers, retry_header) > 0:
            return OK_AFTER_RETRY, str(status)
        return OK, str(status)
    return OTHER, f"HTTP {status}"


def classify_stream(status: int, headers: Mapping[str, str], stats: StreamStats,
                    retry_header: str = "X-Gateway-Retries") -> tuple[str, str]:
    """Classify a 2xx SSE answer that ended cleanly (its body framing complete), from what
    its events said: an error event or object, a chunk that is no JSON, no terminator."""
    if stats.error:
        # the error's text first: "after N tokens: text" would read as a secret to the masker
        return INBAND_ERROR, f"{status} stream error event ({stats.error}) after {stats.tokens} tokens"
    if stats.malformed:
        return OTHER, f"SSE data that is not JSON after {stats.tokens} tokens"
    if not stats.done:
        return TRUNCATED_SUCCESS, (f"SSE stream ended cleanly after {stats.tokens} tokens "
                                   "without data: [DONE] or message_stop")
    if _retries(headers, retry_header) > 0:
        return OK_AFTER_RETRY, str(status)
    return OK, str(status)


def classify_stream_failure(error: BaseException, stats: StreamStats) -> tuple[str, str]:
    """Classify a stream whose reading failed: no byte for load.timeout after at least one
    event is stream_stalled; everything else as classify_exception says."""
    outcome, detail = classify_exception(error)
    if outcome == READ_TIMEOUT and stats.events > 0:
        return STREAM_STALLED, f"no byte for the read timeout after {stats.tokens} tokens"
    return outcome, detail


def _framed(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """An empty 2xx body with neither Content-Length nor chunking: the headers were cut.

    http.client parses "HTTP/1.1 200 OK\r\nContent-Le<EOF>" as a 200 with no body;
    every real server frames a response it means to send (204 and 304 have no body).
    """
    if body or status in (204, 304) or not 200 <= status < 300:
        return True
    return bool(_header(headers, "content-length") or _header(headers, "transfer-encoding"))


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
        return ""
    return value


def _retries(headers: Mapping[str, str], name: str) -> int:
    try:
        return int(_header(headers, name) or 0)
    except ValueError:
        return 0


def classify_exception(error: BaseException) -> tuple[str, str]:
    """Classify a request that failed without a usable response."""
    name = type(error).__name__
    chain = list(_causes(error))
    names = {type(e).__name__ for e in chain}
    refused = refusal(chain)
    if refused is not None:
        return TLS_HANDSHAKE_FAILED, refused
    if "ConnectTimeout" in names or "ConnectTimeoutError" in names:
        return CONNECT_TIMEOUT, name
    if "ReadTimeout" in names or "ReadTimeoutError" in names:
        return READ_TIMEOUT, name
    for cause in chain:
        if isinstance(cause, http.client.IncompleteRead):
            return TRUNCATED, "IncompleteRead"
        if isinstance(cause, http.client.RemoteDisconnected):
            return CLOSED, "RemoteDisconnected"
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED, "ConnectionRefusedError"
        if isinstance(cause, ConnectionResetError):
            return RESET, "ConnectionResetError"
        if isinstance(cause, BrokenPipeError):
            return CLOSED, "BrokenPipeError"
        if isinstance(cause, TimeoutError | socket.timeout):
            return READ_TIMEOUT, type(cause).__name__
        if isinstance(cause, OSError) and cause.errno == errno.ECONNRESET:
            return RESET, type(cause).__name__
    broken = names & {"ChunkedEncodingError", "ProtocolError", "InvalidChunkLength"}
    if broken and (_mentions(chain, "Connection broken") or _mentions(chain, "ended prematurely")):
        return TRUNCATED, name
    return OTHER, name


def in_handshake(outcome: str, detail: str, error: BaseException | None,
                 handshake: Handshake | None) -> tuple[str, str]:
    """A request whose TLS handshake failed (chaos.load.tls saw it raise): a reset or an EOF
    there is said to be in the handshake (an EOF, which the TLS layer reports as an error,
    is a close); a refused handshake is already tls_handshake_failed."""
    if error is None or handshake is None or not handshake.failed or outcome == TLS_HANDSHAKE_FAILED:
        return outcome, detail
    if any(isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError) for e in _causes(error)):
        return CLOSED, "closed during the TLS handshake (no alert)"
    if outcome in (RESET, CLOSED, READ_TIMEOUT):
        return outcome, f"{detail} during the TLS handshake"
    return outcome, detail


def _mentions(chain: list[BaseException], text: str) -> bool:
    return any(text in str(e) for e in chain)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes/contexts, exceptions in its args, and urllib3's .reason."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nested in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nested, BaseException):
                stack.append(nested)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
