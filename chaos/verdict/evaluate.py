"""Evaluate a scenario's assertions against what clients saw and what probes read."""

from __future__ import annotations

from collections.abc import Callable

from chaos.load.classify import (
    CLOSED,
    CONNECT_TIMEOUT,
    GRACEFUL,
    OK_AFTER_RETRY,
    READ_TIMEOUT,
    REFUSED,
    RESET,
)
from chaos.scenario.model import Assertion, BreakerProbe, Scenario
from chaos.scenario.units import Comparison, format_duration
from chaos.verdict.result import AssertionResult, PhaseWindow
from chaos.verdict.stats import Record, Sample

WHOLE_RUN = "(run)"

_COUNTS: dict[str, tuple[str, ...]] = {
    "resets": (RESET,), "refused": (REFUSED,), "closed": (CLOSED,),
    "timeouts": (CONNECT_TIMEOUT, READ_TIMEOUT), "graceful_errors": (GRACEFUL,),
    "ok_after_retry": (OK_AFTER_RETRY,),
}
_EXPLAIN = {
    "resets": "clients saw a TCP reset; a resilient gateway answers 502/503 with a body",
    "refused": "clients had connections refused",
    "closed": "connections were closed without a response",
    "timeouts": "clients timed out waiting",
    "graceful_errors": "graceful 5xx/429 answers with a body",
    "ok_after_retry": "requests that succeeded after the gateway retried",
}
_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max_latency": 100.0}


class Evidence:
    """What the evaluation reads: records grouped by phase, phase windows, breaker samples."""

    def __init__(self, records: list[Record], windows: list[PhaseWindow],
                 breaker: list[tuple[float, float]]) -> None:
        self.records = records
        self.windows = {w.name: w for w in windows}
        self.breaker = breaker
        self.samples: dict[str, Sample] = {}
        whole = Sample()
        for record in records:
            if record.phase in self.windows:
                self.samples.setdefault(record.phase, Sample()).add(record)
                whole.add(record)
        self.samples[WHOLE_RUN] = whole

    def sample(self, phase: str) -> Sample:
        return self.samples.get(phase, Sample())


def evaluate(scenario: Scenario, evidence: Evidence) -> list[AssertionResult]:
    results: list[AssertionResult] = []
    for assertion in scenario.assertions:
        results.extend(_evaluate_one(assertion, scenario, evidence))
    return results


def _evaluate_one(a: Assertion, scenario: Scenario, ev: Evidence) -> list[AssertionResult]:
    phase = a.phase or WHOLE_RUN
    sample = ev.sample(phase)
    out: list[AssertionResult] = []
    if sample.total < a.min_requests:
        out.append(AssertionResult(phase, "min_requests", f">= {a.min_requests}",
                                   str(sample.total), False,
                                   f"only {sample.total} requests were made during {phase}; "
                                   "too few to judge"))
        return out
    if a.success_rate is not None:
        out.append(_rate(phase, "success_rate", a.success_rate, sample.success_rate))
    if a.error_rate is not None:
        rate = None if sample.success_rate is None else 1 - sample.success_rate
        out.append(_rate(phase, "error_rate", a.error_rate, rate))
    for kind, outcomes in _COUNTS.items():
        bound = getattr(a, kind)
        if bound is not None:
            out.append(_count(phase, kind, bound, sample.count(*outcomes), sample.total))
    for kind, q in _PERCENTILES.items():
        bound = getattr(a, kind)
        if bound is not None:
            out.append(_latency(phase, kind, bound, sample.latency(q)))
    if a.breaker is not None and scenario.probes.breaker is not None:
        out.extend(_breaker(phase, a, scenario.probes.breaker, ev))
    if a.recovers_within is not None:
        out.append(_recovery(phase, a, ev))
    return out


def _rate(phase: str, kind: str, bound: Comparison, observed: float | None) -> AssertionResult:
    if observed is None:
        return AssertionResult(phase, kind, bound.text, "n/a", False, f"no requests in {phase}")
    passed = bound.holds(observed)
    message = "" if passed else f"{kind} was {observed:.4f} during {phase}, expected {bound.text}"
    return AssertionResult(phase, kind, bound.text, f"{observed:.4f}", passed, message)


def _count(phase: str, kind: str, bound: Comparison, observed: int, total: int) -> AssertionResult:
    passed = bound.holds(observed)
    message = "" if passed else (
        f"{observed} of {total} requests during {phase}: {_EXPLAIN[kind]} (expected {bound.text})"
    )
    return AssertionResult(phase, kind, bound.text, str(observed), passed, message)


def _latency(phase: str, kind: str, bound: Comparison, observed: float | None) -> AssertionResult:
    if observed is None:
        return AssertionResult(phase, kind, bound.text, "n/a", False, f"no requests in {phase}")
    limit = bound if bound.is_duration else Comparison(bound.op, bound.value / 1000, bound.text)
    passed = limit.holds(observed)
    shown = f"{observed * 1000:.1f}ms"
    message = "" if passed else f"{kind} latency was {shown} during {phase}, expected {bound.text}"
    return AssertionResult(phase, kind, bound.text, shown, passed, message)


def _breaker(phase: str, a: Assertion, probe: BreakerProbe, ev: Evidence) -> list[AssertionResult]:
    assert a.breaker is not None
    window = ev.windows.get(phase)
    out: list[AssertionResult] = []
    if window is None:
        return out
    in_phase = [(t, v) for t, v in ev.breaker if window.start <= t <= window.end]

    def first(match: Callable[[float], bool]) -> float | None:
        return next((t - window.start for t, v in in_phase if match(v)), None)

    checks = (("breaker.opens_within", a.breaker.opens_within, lambda v: v == probe.open_value,
               "opened"),
              ("breaker.closes_within", a.breaker.closes_within, lambda v: v == 0, "closed"))
    for kind, limit, match, verb in checks:
        if limit is None:
            continue
        seen = first(match)
        bound = f"<= {format_duration(limit)}"
        if seen is None:
            message = (f"the breaker never {verb} during {phase} "
                       f"({len(in_phase)} probe samples of {probe.metric})")
            out.append(AssertionResult(phase, kind, bound, "never", False, message))
            continue
        passed = seen <= limit
        message = "" if passed else f"the breaker {verb} {seen:.2f}s into {phase}, expected {bound}"
        out.append(AssertionResult(phase, kind, bound, f"{seen:.2f}s", passed, message))
    return out


def recovery_time(records: list[Record], start: float, end: float, threshold: float,
                  bucket: float = 1.0) -> float | None:
    """Seconds from start until two consecutive buckets (or the last one) meet threshold."""
    edges: list[Sample] = []
    t = start
    while t < end:
        edges.append(Sample())
        t += bucket
    for record in records:
        if start <= record.t < end:
            edges[int((record.t - start) / bucket)].add(record)

    def good(s: Sample) -> bool:
        return s.total > 0 and (s.success_rate or 0.0) >= threshold

    for i, sample in enumerate(edges):
        following = edges[i + 1] if i + 1 < len(edges) else None
        if good(sample) and (following is None or following.total == 0 or good(following)):
            return i * bucket
    return None


def _recovery(phase: str, a: Assertion, ev: Evidence) -> AssertionResult:
    assert a.recovers_within is not None
    window = ev.windows.get(phase)
    bound = f"<= {format_duration(a.recovers_within)}"
    if window is None:
        return AssertionResult(phase, "recovers_within", bound, "n/a", False, "no such phase")
    records = [r for r in ev.records if r.phase == phase]
    seen = recovery_time(records, window.start, window.end, a.recovery_success_rate)
    if seen is None:
        return AssertionResult(phase, "recovers_within", bound, "never", False,
                               f"success rate never got back to {a.recovery_success_rate:.0%} "
                               f"during {phase}")
    passed = seen <= a.recovers_within
    message = "" if passed else f"traffic recovered {seen:.1f}s into {phase}, expected {bound}"
    return AssertionResult(phase, "recovers_within", bound, f"{seen:.1f}s", passed, message)
