"""Breaker open intervals and load shedding, inferred from both sides of the gateway.

A breaker is open while clients get errors that caused no upstream attempt and the
upstream sees nothing but isolated attempts (the half-open probes). Attempts flowing again
end the interval; it closed when the first of them succeeded. Only a request's first
attempt counts: its retries (of a probe, or of a request admitted before the breaker
opened) are not new traffic. A span counts as a breaker
interval when the upstream stayed quiet for at least MIN_OPEN_S, or for PROBE_GAP_S with at
least MIN_FAST_ERRORS fast errors in it, and the requests it served successfully stopped
(a gateway with a full pool turns requests away while its admitted ones keep succeeding:
that is shedding). Errors with no attempt outside those intervals,
while other attempts succeed around them, are load shedding.

Fast errors are kept as counts per 10 ms slot, so memory grows with the run's length, not
with its request count.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from chaos.witness.records import Attempt

MIN_OPEN_S = 0.5
MIN_FAST_ERRORS = 5
PROBE_GAP_S = 0.25  # an attempt this long after the previous one is isolated: a probe
HEALTHY_S = 1.0  # shedding: an attempt succeeded within this long of the error
SLOT_S = 0.01
# An open breaker lets at most its probe through: more successful requests in flight all
# through a span mean a busy gateway turning requests away (shedding), not a breaker.
MAX_SERVED_IN_FLIGHT = 1


@dataclass
class Span:
    """One inferred open interval (epoch seconds until `relative` is applied)."""

    start: float
    end: float  # the last fast error in it
    closed_at: float | None = None
    probes: list[float] = field(default_factory=list)
    fast_errors: int = 0
    quiet_until: float | None = None  # when attempts flowed again (None: never)
    phase: str = ""  # the phase it started in (set once times are relative)

    def qualifies(self) -> bool:
        quiet = (self.quiet_until if self.quiet_until is not None else self.end) - self.start
        return quiet >= MIN_OPEN_S or (self.fast_errors >= MIN_FAST_ERRORS
                                       and quiet >= PROBE_GAP_S)


class FastErrors:
    """Client errors that caused no upstream attempt, counted per (phase, 10 ms slot)."""

    def __init__(self) -> None:
        self.slots: Counter[tuple[str, int]] = Counter()

    def add(self, phase: str, t: float) -> None:
        self.slots[(phase, int(t / SLOT_S))] += 1

    def merged(self) -> list[tuple[float, int]]:
        """(slot time, count) over every phase, in time order."""
        total: Counter[int] = Counter()
        for (_, slot), n in self.slots.items():
            total[slot] += n
        return [(slot * SLOT_S, n) for slot, n in sorted(total.items())]


class Served:
    """Client requests that reached the upstream and succeeded, in flight per 10 ms slot: a
    gateway whose pool is full sheds while these keep flowing, a breaker stops them."""

    def __init__(self) -> None:
        self.starts: Counter[int] = Counter()
        self.ends: Counter[int] = Counter()
        self._flight: dict[int, int] | None = None

    def add(self, start: float, end: float) -> None:
        self.starts[int(start / SLOT_S)] += 1
        self.ends[int(end / SLOT_S)] += 1
        self._flight = None

    def in_flight(self) -> dict[int, int]:
        if self._flight is None:
            self._flight, level = {}, 0
            for slot in sorted(set(self.starts) | set(self.ends)):
                level += self.starts[slot] - self.ends[slot]
                self._flight[slot] = level
        return self._flight

    def lowest(self, start: float, end: float) -> int:
        """The fewest served requests in flight at any moment from start to end."""
        flight = self.in_flight()
        slots = sorted(flight)
        first, last = int(start / SLOT_S), int(end / SLOT_S)
        index = bisect.bisect_right(slots, first) - 1
        lowest = flight[slots[index]] if index >= 0 else 0
        for slot in slots[index + 1:]:
            if slot > last:
                break
            lowest = min(lowest, flight[slot])
        return lowest


def infer_spans(fast: list[tuple[float, int]], attempts: list[Attempt],
                served: Served | None = None) -> list[Span]:
    """Open intervals from fast errors (time, count) and every attempt (both in time order).

    Only the first attempt of each client request counts as the upstream seeing traffic:
    a request's later attempts are its own retries (of a probe, or of a request admitted
    before the breaker opened), not new traffic let through. An attempt's `t` is when the
    gateway began it (a refused one's too: the proxy's accept, not its dial giving up)."""
    events = sorted([(t, 0, n, None) for t, n in fast]
                    + [(a.t, 1, 0, a) for a in _first_attempts(attempts)],
                    key=lambda e: (e[0], e[1]))
    spans: list[Span] = []
    current: Span | None = None
    previous: Attempt | None = None
    for t, kind, n, attempt in events:
        if kind == 0:
            if current is None:
                current = Span(start=t, end=t)
            current.end, current.fast_errors = t, current.fast_errors + n
            continue
        assert attempt is not None
        if current is not None:
            if previous is None or t - previous.t >= PROBE_GAP_S:
                current.probes.append(t)
            else:  # attempts flow again: the interval is over
                current.quiet_until = previous.t if previous.t >= current.start else t
                spans.append(current)
                current = None
        previous = attempt
    if current is not None:
        spans.append(current)
    found = [s for s in spans if s.qualifies()
             and (served is None or served.lowest(s.start, s.end) <= MAX_SERVED_IN_FLIGHT)]
    _closings(found, attempts)
    return found


def _first_attempts(attempts: list[Attempt]) -> list[Attempt]:
    """Each request's first attempt, and every attempt that carried no id."""
    seen: set[str] = set()
    out = []
    for attempt in attempts:
        if attempt.rid is None or attempt.rid not in seen:
            out.append(attempt)
        if attempt.rid is not None:
            seen.add(attempt.rid)
    return out


def _closings(spans: list[Span], attempts: list[Attempt]) -> None:
    """closed_at: the first attempt of the renewed flow that succeeded (when it ended)."""
    ok = [a for a in attempts if a.succeeded]
    starts = [a.t for a in ok]
    for i, span in enumerate(spans):
        if span.quiet_until is None:
            continue
        index = bisect.bisect_left(starts, span.quiet_until)
        limit = spans[i + 1].start if i + 1 < len(spans) else float("inf")
        if index < len(ok) and ok[index].t < limit:
            found = ok[index]
            span.closed_at = found.end if found.end is not None else found.t


def shed_by_phase(errors: FastErrors, spans: list[Span], attempts: list[Attempt],
                  served: Served | None = None) -> dict[str, int]:
    """Fast errors outside every open interval while the upstream was healthy: an attempt
    succeeded nearby, or requests it served successfully were in flight."""
    bounds = sorted((s.start, max(s.end, s.closed_at or s.end)) for s in spans)
    ok = sorted(a.t for a in attempts if a.succeeded)
    out: Counter[str] = Counter()
    for (phase, slot), n in errors.slots.items():
        t = slot * SLOT_S
        if _inside(t, bounds):
            continue
        index = bisect.bisect_left(ok, t - HEALTHY_S)
        nearby = index < len(ok) and ok[index] <= t + HEALTHY_S
        if nearby or (served is not None and served.lowest(t, t) > 0):
            out[phase] += n
    return dict(out)


def _inside(t: float, bounds: list[tuple[float, float]]) -> bool:
    index = bisect.bisect_right(bounds, (t, float("inf"))) - 1
    return index >= 0 and bounds[index][0] - SLOT_S <= t <= bounds[index][1] + SLOT_S
