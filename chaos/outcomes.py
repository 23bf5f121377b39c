"""The harness's one vocabulary: outcome classes, the sets verdicts group them into, the
count-bound names of the scenario language, and circuit-breaker states.

Dependency-free on purpose: the locustfile imports it inside Locust's gevent process,
where anything heavy imported before the monkey-patching breaks.
"""

from __future__ import annotations

# What a client saw, per request (DESIGN.md "Outcome classes").
OK = "ok"
OK_AFTER_RETRY = "ok_after_retry"  # the gateway says so in a response header
GRACEFUL = "graceful_error"  # HTTP 5xx/429 with a body
RESET = "reset"  # TCP RST: ECONNRESET
REFUSED = "refused"
CONNECT_TIMEOUT = "connect_timeout"
READ_TIMEOUT = "read_timeout"
CLOSED = "closed"  # connection closed without a response
TRUNCATED = "truncated"  # a response or stream cut at the transport (framing broken, body short)
TRUNCATED_SUCCESS = "truncated_success"  # HTTP 200, a stream that ended cleanly without its
#                                          terminator (data: [DONE], Anthropic's message_stop)
STREAM_STALLED = "stream_stalled"  # at least one event, then no byte for load.timeout
INBAND_ERROR = "inband_error"  # HTTP 200 whose stream or body carries an error event/object
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"  # a TLS alert or a certificate that did not
#   verify, with the reason; a reset or close during the handshake stays reset/closed
OTHER = "other"

OUTCOMES = (OK, OK_AFTER_RETRY, GRACEFUL, RESET, REFUSED, CONNECT_TIMEOUT, READ_TIMEOUT, CLOSED,
            TRUNCATED, TRUNCATED_SUCCESS, STREAM_STALLED, INBAND_ERROR, TLS_HANDSHAKE_FAILED,
            OTHER)
SUCCESS = (OK, OK_AFTER_RETRY)  # counted as success (success_rate, the score's A term)
SUCCESSES = frozenset(SUCCESS)
# acceptable answers: a graceful error is one, and so is an error told in band (in a 200 stream)
HANDLED = (OK, OK_AFTER_RETRY, GRACEFUL, INBAND_ERROR)

# Assertion keys that bound a count of requests (chaos.verdict.evaluate, the Assertion model):
# every outcome class under its own name, the plural spellings scenarios have always used,
# and timeouts, the sum of both kinds of timeout. graceful_errors counts every error the client
# is told about: a 5xx/429 with a body and an error event inside a 200 stream (before
# inband_error existed, such a stream was a graceful_error; scenarios bound it so), and
# truncated every stream cut short, at the transport or cleanly without its terminator
# (truncated_success, which was truncated before; truncated_success alone bounds that kind).
ALIASES: dict[str, tuple[str, ...]] = {
    "resets": (RESET,), "graceful_errors": (GRACEFUL, INBAND_ERROR),
    TRUNCATED: (TRUNCATED, TRUNCATED_SUCCESS),
    "timeouts": (CONNECT_TIMEOUT, READ_TIMEOUT),
}
COUNT_BOUNDS: dict[str, tuple[str, ...]] = {**{o: (o,) for o in OUTCOMES}, **ALIASES}

# Circuit-breaker states: the value a gateway's gauge reads (reference gateway's /metrics)
# and the name results and reports use.
BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN = "closed", "open", "half-open"
BREAKER_CLOSED_VALUE, BREAKER_OPEN_VALUE, BREAKER_HALF_OPEN_VALUE = 0.0, 1.0, 2.0
BREAKER_STATES = {BREAKER_CLOSED_VALUE: BREAKER_CLOSED, BREAKER_OPEN_VALUE: BREAKER_OPEN,
                  BREAKER_HALF_OPEN_VALUE: BREAKER_HALF_OPEN}
