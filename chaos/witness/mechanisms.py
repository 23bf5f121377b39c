"""What the gateway did with each client request, read from the attempts it caused:
retries, ok after retry, retries of non-idempotent requests, hedges, the upstream timeout
(how long it waited on an attempt it then abandoned) and whether it honoured Retry-After
(UpstreamOrder: the pause before its next attempt to that upstream).

One ``Tally`` per phase; the whole run is their sum (``Tally.merged``).
"""

from __future__ import annotations

import bisect
import email.utils
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from chaos.outcomes import OK, OK_AFTER_RETRY, READ_TIMEOUT, SUCCESSES
from chaos.witness.join import ClientRequest
from chaos.witness.records import Attempt

NON_IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})
# A second attempt that starts this long before the previous one ended is a hedge, not a
# retry (the two connections' events reach the witness a few ms apart).
HEDGE_OVERLAP_S = 0.01
# Retry-After is whole seconds; a gateway that sleeps exactly R may wake a hair early.
RETRY_AFTER_SLACK_S = 0.05
# An attempt abandoned sooner than this was given up on a failure (nginx closing a connection
# the proxy could not carry on), not on a timeout: upstream timeouts are not this short.
MIN_TIMEOUT_S = 0.05
# An attempt starting this soon after a 429 arrived was on its way before the gateway read it.
RACE_S = 0.01


class UpstreamOrder:
    """Every attempt per source in time order: what the gateway sent next after a 429.

    Retry-After asks for a pause before the next request to that upstream: a request the
    gateway retried is judged by its own next attempt, one it did not retry by the next
    attempt the gateway sent that upstream at all."""

    def __init__(self, attempts: Iterable[Attempt]) -> None:
        self.by_source: dict[str, list[Attempt]] = {}
        for attempt in sorted(attempts, key=lambda a: a.t):
            self.by_source.setdefault(attempt.source, []).append(attempt)
        self.starts = {k: [a.t for a in v] for k, v in self.by_source.items()}

    def next_after(self, attempt: Attempt, moment: float) -> Attempt | None:
        starts = self.starts.get(attempt.source, [])
        index = bisect.bisect_right(starts, moment + RACE_S)
        return self.by_source[attempt.source][index] if index < len(starts) else None


def ok_after_retry(outcome: str, attempts: int) -> bool:
    """A success that needed more than one attempt (or that the gateway's header says so)."""
    return outcome == OK_AFTER_RETRY or (outcome == OK and attempts > 1)


def retry_after_seconds(value: str | None, received: float) -> float | None:
    """Retry-After as seconds from `received`: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - received)


def hedged(attempts: list[Attempt]) -> bool:
    """Two attempts of one request in flight at once (attempts in time order)."""
    busy_until = -math.inf
    for attempt in attempts:
        if attempt.t < busy_until - HEDGE_OVERLAP_S:
            return True
        busy_until = max(busy_until, _ended_at(attempt))
    return False


def _ended_at(attempt: Attempt) -> float:
    if attempt.end is not None:
        return attempt.end
    return math.inf if attempt.ended == "open" else attempt.first_byte or attempt.t


def _received(attempt: Attempt) -> float:
    return attempt.first_byte or attempt.end or attempt.t


@dataclass
class Tally:
    """The mechanism figures of one phase (M in the witness contract)."""

    requests: int = 0
    matched: int = 0  # attempts that carried a client request's id
    unmatched: int = 0  # attempts no client request claims, placed here by their time
    no_id: int = 0  # of those, attempts that carried no request id at all
    joined: bool = True  # some attempt of the run carried a client's id (set by the analysis)
    max_attempts: int = 0
    retried: int = 0
    ok_after_retry: int = 0
    non_idempotent_retries: int = 0
    hedged: int = 0
    shed: int = 0
    abandoned: int = 0  # attempts the gateway side closed before the response was complete
    waits: list[float] = field(default_factory=list)  # of those, the timeouts: end - t
    after_429: int = 0
    honoured: int = 0
    violations: int = 0
    gaps: list[float] = field(default_factory=list)

    def add_request(self, request: ClientRequest, attempts: list[Attempt],
                    idempotent: bool, order: UpstreamOrder | None = None) -> None:
        n = len(attempts)
        self.requests += 1
        self.matched += n
        self.max_attempts = max(self.max_attempts, n)
        self.retried += n > 1
        self.ok_after_retry += request.outcome in SUCCESSES and ok_after_retry(request.outcome, n)
        method = (request.method or (attempts[0].method if attempts else None) or "").upper()
        self.non_idempotent_retries += (n > 1 and method in NON_IDEMPOTENT_METHODS
                                        and not idempotent)
        self.hedged += hedged(attempts)
        # a client that gave up first made the gateway let go: that wait is the client's
        self.add_waits(attempts, timed=request.outcome != READ_TIMEOUT)
        self._retry_after(attempts, order)

    def add_unmatched(self, attempt: Attempt, order: UpstreamOrder | None = None) -> None:
        """An attempt no client request claims, placed in this phase by its time."""
        self.unmatched += 1
        self.no_id += attempt.rid is None
        self.add_waits([attempt])
        self._retry_after([attempt], order)

    def add_waits(self, attempts: Iterable[Attempt], timed: bool = True) -> None:
        """Abandoned attempts; their waits when the gateway's own clock decided (a wait
        under MIN_TIMEOUT_S is the gateway reacting to a failure, not a timeout)."""
        for attempt in attempts:
            if not attempt.abandoned:
                continue
            self.abandoned += 1
            wait = None if attempt.end is None else attempt.end - attempt.t
            if timed and wait is not None and wait >= MIN_TIMEOUT_S:
                self.waits.append(wait)

    def _retry_after(self, attempts: list[Attempt], order: UpstreamOrder | None) -> None:
        followers: list[Attempt | None] = [*attempts[1:], None]
        for attempt, following in zip(attempts, followers, strict=False):
            if attempt.status != 429 or attempt.retry_after is None:
                continue
            wanted = retry_after_seconds(attempt.retry_after, _received(attempt))
            if wanted is None:
                continue
            self.after_429 += 1
            if following is None and order is not None:
                following = order.next_after(attempt, _received(attempt))
            if following is None:
                continue
            gap = following.t - _received(attempt)
            self.gaps.append(gap)
            if gap >= wanted - RETRY_AFTER_SLACK_S:
                self.honoured += 1
            else:
                self.violations += 1

    @classmethod
    def merged(cls, parts: Iterable[Tally]) -> Tally:
        whole = cls()
        for part in parts:
            whole.joined = part.joined
            for name in ("requests", "matched", "unmatched", "no_id", "retried", "abandoned",
                         OK_AFTER_RETRY,
                         "non_idempotent_retries", "hedged", "shed", "after_429", "honoured",
                         "violations"):
                setattr(whole, name, getattr(whole, name) + getattr(part, name))
            whole.max_attempts = max(whole.max_attempts, part.max_attempts)
            whole.waits.extend(part.waits)
            whole.gaps.extend(part.gaps)
        return whole

    @property
    def attempts(self) -> int:
        return self.matched + self.unmatched

    @property
    def client_attempts(self) -> int:
        """Attempts on behalf of clients: when ids joined the two sides, attempts without one
        are not client traffic (the gateway's health checks, a probe it forwards); when none
        joined (a gateway that drops the id), every attempt counts."""
        return self.attempts - self.no_id if self.joined else self.attempts

    def to_dict(self) -> dict[str, Any]:
        """M of the witness contract (section 4)."""
        return {
            "requests": self.requests, "attempts": self.attempts,
            "attempts_per_request": _ratio(self.matched, self.requests),
            "client_attempts": self.client_attempts,
            "amplification": _ratio(self.client_attempts, self.requests),
            "max_attempts": self.max_attempts, "retried": self.retried,
            OK_AFTER_RETRY: self.ok_after_retry,
            "non_idempotent_retries": self.non_idempotent_retries,
            "abandoned": self.abandoned,
            "upstream_timeout_s": _round(statistics.median(self.waits)) if self.waits else None,
            "upstream_timeout_max_s": _round(max(self.waits)) if self.waits else None,
            "shed": self.shed, "shed_share": _ratio(self.shed, self.requests),
            "hedged": self.hedged,
            "retry_after": {"after_429": self.after_429, "honoured": self.honoured,
                            "violations": self.violations,
                            "min_gap_s": _round(min(self.gaps)) if self.gaps else None},
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float) -> float:
    return round(value, 3)
