"""The one definition of "recovered", measured once, at the resolution of the requests.

Requests are counted by their start in slots of SLOT (10 ms). A *window* is the requests
that started within WINDOW (1 s) of one request (windows begin at each slot holding
requests, so at per-request boundaries up to 10 ms); a window *falls short* when its
success rate (ok + ok_after_retry) is confidently below the threshold: the upper end of
its Wilson interval is below it (94 of 100 is noise around 95%; 80 of 100, or 0 of 3, is
not). Windows that would run past the end of the measured span are judged as the last
full window instead, so that a lone failure in the final milliseconds is not a window of
one.

Healthy at: the start of the first successful request after the last window that fell
short (the span's start when none did; never, when the last window fell short). The
recovery time counts from the last fault change (a fault requested on or off) at or
before that instant within the span, else from the span's start.

The report's recovery card judges the windows from the first fault to the end of the run;
`recovers_within` judges them from the first fault to the end of its phase and counts
from the phase start at the earliest (0 when the service was healthy before the phase).
With the restoring action at the start of the recovery phase (the usual shape) both
count from that action and show the same number.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from chaos.verdict.intervals import wilson
from chaos.verdict.result import FaultRecord, Recovery

SLOT = 0.01  # seconds: the resolution of request start times
WINDOW = 1.0  # seconds of requests judged together
HEALTHY = 0.95  # the report card's threshold (recovers_within has recovery_success_rate)
_PER_WINDOW = round(WINDOW / SLOT)
PREFIX = "recovery: "


def slot_of(t: float) -> int:
    return math.floor(round(t / SLOT, 6))


@dataclass
class Slots:
    """Requests per 10 ms slot: [successes, requests, earliest successful start]."""

    slots: dict[int, list[float]] = field(default_factory=dict)

    def add(self, t: float, success: bool) -> None:
        slot = self.slots.setdefault(slot_of(t), [0, 0, math.inf])
        slot[1] += 1
        if success:
            slot[0] += 1
            slot[2] = min(slot[2], t)


def fault_changes(faults: Iterable[FaultRecord]) -> list[tuple[float, str]]:
    """(seconds, what) of every fault switched on or off, as requested, in time order.

    An action with nothing to undo (kill, start) ends with its phase but changes nothing
    then; only removals that ran (or failed) count.
    """
    changes = [(f.start, f.description) for f in faults]
    changes += [(f.end, f"{f.description} removed") for f in faults
                if f.end is not None and (f.removed is not None or f.error)]
    return sorted(changes)


def measure(slots: Slots, start: float, end: float, changes: list[tuple[float, str]],
            threshold: float, confidence: float = 0.95,
            since: tuple[float, str] | None = None) -> Recovery | None:
    """The recovery of the requests that started in [start, end); None without requests.

    Counted from the last change at or after `since` (default: the span's start) and at
    or before the healthy instant, else from `since` itself.
    """
    lo, hi = slot_of(start), math.ceil(round(end / SLOT, 6))
    keys = sorted(k for k in slots.slots if lo <= k < hi)
    if not keys:
        return None
    oks = [0, *accumulate(int(slots.slots[k][0]) for k in keys)]
    totals = [0, *accumulate(int(slots.slots[k][1]) for k in keys)]

    def short(first: int) -> bool:
        i, j = bisect.bisect_left(keys, first), bisect.bisect_left(keys, first + _PER_WINDOW)
        total = totals[j] - totals[i]
        return total > 0 and wilson(oks[j] - oks[i], total, confidence)[1] < threshold

    final = max(lo, hi - _PER_WINDOW)
    healthy_at: float | None = None
    if not short(final):
        fell = [k for k in keys if k <= final and short(k)]
        healthy_at = start if not fell else _first_success(slots, keys, fell[-1])
    return _result(start, end, changes, threshold, healthy_at,
                   since or (start, "the span's start"))


def _first_success(slots: Slots, keys: list[int], after: int) -> float | None:
    for key in keys[bisect.bisect_right(keys, after):]:
        if slots.slots[key][0]:
            return slots.slots[key][2]
    return None


def _result(start: float, end: float, changes: list[tuple[float, str]], threshold: float,
            healthy_at: float | None, floor: tuple[float, str]) -> Recovery:
    until = end if healthy_at is None else healthy_at
    before = [(t, what) for t, what in changes if floor[0] <= t <= until]
    reference, since = before[-1] if before else floor
    seconds = None if healthy_at is None else round(max(0.0, healthy_at - reference), 3)
    return Recovery(span_start=round(start, 3), span_end=round(end, 3),
                    reference=round(reference, 3), since=since,
                    healthy_at=None if healthy_at is None else round(healthy_at, 3),
                    seconds=seconds, recovered=healthy_at is not None, threshold=threshold)


def run_recovery(slots: Slots, faults: list[FaultRecord], end: float,
                 confidence: float = 0.95) -> Recovery | None:
    """The report card's figure: from the first fault to the end of the run, at HEALTHY."""
    if not faults:
        return None
    first = min(faults, key=lambda f: f.start)
    return measure(slots, first.start, end, fault_changes(faults), HEALTHY, confidence,
                   since=(first.start, first.description))


def phase_recovery(slots: Slots, start: float, end: float, phase: str,
                   changes: list[tuple[float, str]], threshold: float,
                   confidence: float = 0.95) -> Recovery | None:
    """`recovers_within`'s figure: the run's rule, counted from the phase start at the earliest.

    The windows are judged from the first fault on (as for the report card), so clients
    still failing when the phase began count even if none started a request in its first
    moments; the clock starts at the phase start or a fault change inside the phase.
    """
    earlier = [t for t, _ in changes if t <= start]
    return measure(slots, min(earlier, default=start), end, changes, threshold, confidence,
                   since=(start, f"the start of {phase}"))


def shown(recovery: Recovery | None) -> str:
    """The one way the figure is written (console, assertions, report)."""
    if recovery is None:
        return "n/a"
    return "never" if recovery.seconds is None else seconds_text(recovery.seconds)


def seconds_text(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f}s"


def recovery_line(recovery: Recovery) -> str:
    """The console's line for the run's recovery (the report shows `described`)."""
    return PREFIX + described(recovery)


def described(recovery: Recovery) -> str:
    """The figure with what it counts from: the same words in the console and the report."""
    text = shown(recovery)
    if recovery.seconds is None:
        return (f"{text}: the success rate was still below {recovery.threshold:.0%} at the "
                f"end of the run (last fault change: {recovery.since})")
    if recovery.healthy_at is not None and recovery.healthy_at <= recovery.reference:
        return f"{text}: clients never saw degraded service after {recovery.since}"
    return f"{text} after {recovery.since} (healthy from {recovery.healthy_at:.2f}s)"
