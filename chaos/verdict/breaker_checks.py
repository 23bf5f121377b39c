"""Circuit-breaker contracts, judged from the gateway's probed state (probes.breaker, when
it read samples in the phase) or else from the upstream witness's inferred open intervals
(chaos.witness.breaker), and client latency.

opens_within: from the phase start until the breaker reads open.
fails_fast_under: latency (p99) of requests answered while it was open.
half_opens_after: from its first opening until it first reads half-open.
closes_within: from the phase start until it reads closed again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chaos.outcomes import BREAKER_CLOSED_VALUE, BREAKER_HALF_OPEN_VALUE
from chaos.scenario.model import BreakerAssertion, BreakerProbe, Scenario
from chaos.scenario.units import Comparison, format_duration
from chaos.verdict.intervals import FAIL, INCONCLUSIVE, PASS
from chaos.verdict.result import AssertionResult

if TYPE_CHECKING:
    from chaos.verdict.evaluate import Evidence

CLOSED, HALF_OPEN = BREAKER_CLOSED_VALUE, BREAKER_HALF_OPEN_VALUE


def open_intervals(samples: list[tuple[float, float]], open_value: float) -> list[tuple[float, float]]:
    """Time spans during which consecutive samples read open."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for t, value in samples:
        if value == open_value and start is None:
            start = t
        elif value != open_value and start is not None:
            spans.append((start, t))
            start = None
    if start is not None and samples:
        spans.append((start, samples[-1][0]))
    return spans


def _result(phase: str, kind: str, bound: str, observed: str, status: str, message: str,
            value: float | None = None) -> AssertionResult:
    return AssertionResult(phase, kind, bound, observed, status == PASS, message, status=status,
                           value=value)


def evaluate_breaker(phase: str, spec: BreakerAssertion, probe: BreakerProbe,
                     ev: Evidence) -> list[AssertionResult]:
    window = ev.windows.get(phase)
    if window is None:
        return []
    in_phase = [(t, v) for t, v in ev.breaker if window.start <= t <= window.end]
    out: list[AssertionResult] = []

    def first(match: Callable[[float], bool], since: float) -> float | None:
        return next((t - since for t, v in in_phase if t >= since and match(v)), None)

    timed = (
        ("breaker.opens_within", spec.opens_within, lambda v: v == probe.open_value, "opened",
         window.start),
        ("breaker.closes_within", spec.closes_within, lambda v: v == CLOSED, "closed",
         window.start),
    )
    for kind, limit, match, verb, since in timed:
        if limit is not None:
            out.append(_timed(phase, kind, limit, first(match, since), verb, probe, len(in_phase)))
    if spec.half_opens_after is not None:
        opened = next((t for t, v in in_phase if v == probe.open_value), None)
        seen = None if opened is None else first(lambda v: v == HALF_OPEN, opened)
        out.append(_timed(phase, "breaker.half_opens_after", spec.half_opens_after, seen,
                          "half-opened", probe, len(in_phase)))
    if spec.fails_fast_under is not None:
        out.append(_fails_fast(phase, spec.fails_fast_under.defaulting("<"), ev))
    return out


def _timed(phase: str, kind: str, limit: float, seen: float | None, verb: str,
           probe: BreakerProbe, samples: int) -> AssertionResult:
    bound = f"<= {format_duration(limit)}"
    if seen is None:
        return _result(phase, kind, bound, "never", FAIL,
                       f"the breaker never {verb} during {phase} ({samples} probe samples of "
                       f"{probe.metric}; expected {bound})")
    status = PASS if seen <= limit else FAIL
    message = "" if status == PASS else f"the breaker {verb} {seen:.2f}s into {phase}, expected {bound}"
    return _result(phase, kind, bound, f"{seen:.2f}s", status, message, seen)


def _fails_fast(phase: str, bound: Comparison, ev: Evidence) -> AssertionResult:
    sample = ev.aggregate.while_open.get(phase)
    p99 = None if sample is None else sample.latency(99)
    if p99 is None:
        return _result(phase, "breaker.fails_fast_under", bound.text, "n/a", INCONCLUSIVE,
                       f"no request was answered while the breaker was open during {phase}")
    limit = bound if bound.is_duration else Comparison(bound.op, bound.value / 1000, bound.text)
    status = PASS if limit.holds(p99) else FAIL
    shown = f"{p99 * 1000:.1f}ms"
    message = "" if status == PASS else (
        f"while the breaker was open, p99 latency was {shown} during {phase}; "
        f"an open breaker should fail fast ({bound.text})")
    return _result(phase, "breaker.fails_fast_under", bound.text, shown, status, message, p99)


# -- inferred from the upstream witness (no probes.breaker, or a probe that read nothing) --
NO_BREAKER = "the upstream saw attempts all through the fault: no breaker"
JOURNAL_BLIND = (
    "the backend journal sees only the attempts that reached the backend: during {}'s "
    "faults an attempt lost on the way looks like no attempt, so a breaker cannot be told "
    "from an outage (the proxy's tap can: witness.use tap with the embedded proxy)")


def judge(phase: str, spec: BreakerAssertion, scenario: Scenario,
          ev: Evidence) -> list[AssertionResult]:
    """The breaker probe when it read samples in the phase; else the witness's intervals."""
    probe = scenario.probes.breaker
    window = ev.windows.get(phase)
    read = window is not None and any(window.start <= t <= window.end for t, _ in ev.breaker)
    if probe is not None and (read or ev.witness is None):
        return evaluate_breaker(phase, spec, probe, ev)
    faulted = any(p.faults for p in scenario.phases if p.name == phase)
    if ev.witness is not None and ev.witness_kind == "journal" and faulted:
        return [_result(phase, "breaker", "", "n/a", INCONCLUSIVE, JOURNAL_BLIND.format(phase))]
    if ev.witness is not None:
        return evaluate_inferred(phase, spec, ev)
    return [_result(phase, "breaker", "", "n/a", INCONCLUSIVE,
                    "breaker assertions read probes.breaker or the upstream witness, and this "
                    f"run had neither ({ev.witness_note or 'no tap, no journal'})")]


def evaluate_inferred(phase: str, spec: BreakerAssertion, ev: Evidence) -> list[AssertionResult]:
    """The same contracts on the witness's open intervals (chaos.witness.breaker): opened =
    clients got errors with no upstream attempt, half-open = a probe reached the upstream,
    closed = attempts flowed again and succeeded."""
    window = ev.windows.get(phase)
    if window is None or ev.witness is None:
        return []
    spans = [s for s in ev.witness.spans if s.start < window.end
             and (s.closed_at if s.closed_at is not None else s.end) >= window.start]
    asked = [(k, v) for k, v in (("opens_within", spec.opens_within),
                                 ("closes_within", spec.closes_within),
                                 ("half_opens_after", spec.half_opens_after),
                                 ("fails_fast_under", spec.fails_fast_under and
                                  spec.fails_fast_under.defaulting("<"))) if v is not None]
    if not spans:
        return [_no_span(phase, f"breaker.{k}", v, ev.witness.attempts_in(window))
                for k, v in asked]
    first = spans[0]
    since = window.start
    seen = {
        "opens_within": max(first.start - since, 0.0),
        "closes_within": None if first.closed_at is None or first.closed_at > window.end
        else max(first.closed_at - since, 0.0),
        "half_opens_after": first.probes[0] - first.start if first.probes else None,
    }
    verbs = {"opens_within": "opened", "closes_within": "closed",
             "half_opens_after": "half-opened"}
    out = []
    for key, limit in asked:
        if key == "fails_fast_under":
            assert isinstance(limit, Comparison)
            out.append(_fails_fast(phase, limit, ev))
            continue
        assert isinstance(limit, float | int)
        out.append(_timed_inferred(phase, f"breaker.{key}", float(limit), seen[key], verbs[key]))
    return out


def _no_span(phase: str, kind: str, limit: float | Comparison, attempts: int) -> AssertionResult:
    bound = limit.text if isinstance(limit, Comparison) else f"<= {format_duration(limit)}"
    if attempts == 0:
        return _result(phase, kind, bound, "n/a", INCONCLUSIVE,
                       f"the upstream saw no attempts during {phase} and no client got an "
                       "error without one: nothing shows a breaker either way")
    return _result(phase, kind, bound, "never", FAIL,
                   f"{NO_BREAKER} ({attempts} upstream attempts during {phase}, never a span "
                   "of client errors without upstream attempts)")


def _timed_inferred(phase: str, kind: str, limit: float, seen: float | None,
                    verb: str) -> AssertionResult:
    bound = f"<= {format_duration(limit)}"
    if seen is None:
        how = ("no probe reached the upstream while clients got errors without attempts"
               if verb == "half-opened" else "attempts never flowed again and succeeded")
        return _result(phase, kind, bound, "never", FAIL,
                       f"the breaker never {verb} during {phase} ({how}; the upstream witness, "
                       f"expected {bound})")
    status = PASS if seen <= limit else FAIL
    message = "" if status == PASS else (
        f"the breaker {verb} {seen:.2f}s into {phase} (the upstream witness), expected {bound}")
    return _result(phase, kind, bound, f"{seen:.2f}s", status, message, seen)
