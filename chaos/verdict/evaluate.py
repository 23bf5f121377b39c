"""Evaluate a scenario's assertions against what clients saw and what probes read.

Rates are judged on their Wilson interval (pass only when the whole interval
meets the bound, fail only when none of it does, otherwise inconclusive);
counts and latencies are judged on the observed value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chaos import outcomes as o
from chaos.outcomes import COUNT_BOUNDS
from chaos.scenario.model import Assertion, Scenario
from chaos.scenario.units import Comparison, format_duration
from chaos.verdict import breaker_checks, counters, llm_checks, recovery, witness_checks
from chaos.verdict.intervals import FAIL, INCONCLUSIVE, PASS, judge_interval, wilson
from chaos.verdict.result import AssertionResult, FaultRecord, PhaseWindow
from chaos.verdict.stats import Aggregate, Record, Sample

if TYPE_CHECKING:
    from chaos.witness.analysis import Findings

WHOLE_RUN = "(run)"

_RESET = "clients saw a TCP reset; a resilient gateway answers 502/503 with a body"
_GRACEFUL = "graceful 5xx/429 answers with a body"
# What each count key of chaos.outcomes.COUNT_BOUNDS counted, for failure messages
EXPLAIN = {
    o.OK: "requests answered without a retry", o.RESET: _RESET, "resets": _RESET,
    o.REFUSED: "clients had connections refused",
    o.CLOSED: "connections were closed without a response",
    "timeouts": "clients timed out waiting (connecting or reading)",
    o.CONNECT_TIMEOUT: "clients timed out connecting",
    o.READ_TIMEOUT: "clients timed out waiting for the response",
    o.GRACEFUL: _GRACEFUL, "graceful_errors": _GRACEFUL + " or error events in a 200 stream",
    o.INBAND_ERROR: "200 answers whose stream or body carried an error event",
    o.TRUNCATED_SUCCESS: "streams that ended cleanly but without their terminator, or with "
                         "a finish_reason no provider sent",
    o.STREAM_STALLED: "streams that stopped sending mid-way until the client gave up",
    o.TLS_HANDSHAKE_FAILED: "clients' TLS handshakes failed (an alert, or a certificate "
                            "that did not verify)",
    o.OK_AFTER_RETRY: "requests that succeeded after the gateway retried",
    o.TRUNCATED: "responses or streams were cut short (at the transport, or ended without "
                 "their terminator)",
    o.OTHER: "requests no other outcome class describes (HTTP 4xx, 5xx without a body, "
             "other errors)",
}
_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max_latency": 100.0}


class Evidence:
    """What the evaluation reads: aggregates of the records, phase windows, probe samples."""

    def __init__(self, records: Iterable[Record], windows: list[PhaseWindow],
                 breaker: list[tuple[float, float]],
                 upstream: list[tuple[float, float]] | None = None,
                 open_value: float = 1.0, faults: list[FaultRecord] | None = None,
                 requests: Iterable[str] | None = None, witness: Findings | None = None,
                 witness_note: str = "", witness_kind: str = "", llm: Any = None) -> None:
        self.windows = {w.name: w for w in windows}
        self.llm = llm  # chaos.llm.analysis.LlmFindings (provider journals, token figures)
        # The upstream witness's findings (chaos.witness.analysis), None when the run had none
        self.witness = witness
        self.witness_note = witness_note
        self.witness_kind = witness_kind  # tap | journal | none ("" when not told)
        self.changes = recovery.fault_changes(faults or [])  # what recovery counts from
        self.breaker = breaker
        self.upstream = upstream or []
        self.open_value = open_value
        # chaos.capture.analysis.CaptureAnalysis when packets were captured (rst_from)
        self.capture: Any = None
        # Open intervals: the breaker probe's when it ever read open, else the witness's
        spans = breaker_checks.open_intervals(breaker, open_value)
        if not spans and witness is not None:
            spans = witness.open_intervals()
        self.aggregate = Aggregate(records, {w.name: w.start for w in windows}, spans,
                                   requests=None if requests is None else frozenset(requests))

    def sample(self, phase: str, request: str | None = None) -> Sample:
        """The phase's records (the whole run's for WHOLE_RUN), of one request name if given."""
        if request is not None:
            scope = None if phase == WHOLE_RUN else phase
            return self.aggregate.requests.get((scope, request), Sample())
        if phase == WHOLE_RUN:
            return self.aggregate.whole
        return self.aggregate.phases.get(phase, Sample())


def scoped_requests(scenario: Scenario) -> set[str]:
    """The request names that `request:` bounds judge (Evidence keeps their records apart)."""
    return {a.request for a in scenario.assertions if a.request is not None}


def evaluate(scenario: Scenario, evidence: Evidence) -> list[AssertionResult]:
    results: list[AssertionResult] = []
    for assertion in scenario.assertions:
        results.extend(_evaluate_one(assertion, scenario, evidence))
    return results


def overall(results: list[AssertionResult]) -> str:
    """fail beats inconclusive beats pass."""
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return FAIL
    if INCONCLUSIVE in statuses:
        return INCONCLUSIVE
    return PASS


def _evaluate_one(a: Assertion, scenario: Scenario, ev: Evidence) -> list[AssertionResult]:
    phase = a.phase or WHOLE_RUN
    sample = ev.sample(phase, a.request)
    out = _client_bounds(a, phase, sample, scenario.confidence)
    if a.request is not None:  # the loader allows only the bounds above with `request`
        for item in out:
            item.request = a.request
        return out
    if out and out[0].kind == "min_requests":
        return out
    if a.breaker is not None and phase != WHOLE_RUN:
        out.extend(breaker_checks.judge(phase, a.breaker, scenario, ev))
    if a.recovers_within is not None:
        out.append(_recovery(phase, a, ev, scenario.confidence))
    if a.retry_amplification is not None:
        # the counter probe when it spans the phase, else the witness's attempts
        bound = a.retry_amplification.defaulting("<=")
        counted = _amplification(phase, bound, sample.total, ev)
        fallback = (witness_checks.amplification(phase, WHOLE_RUN, bound, ev)
                    if counted.status == INCONCLUSIVE else None)
        out.append(fallback or counted)
    out.extend(witness_checks.evaluate_witness(a, phase, WHOLE_RUN, ev))
    out.extend(llm_checks.evaluate_llm(a, phase, WHOLE_RUN, ev))
    for key, bound in (a.rst_from or {}).items():
        out.append(_rst_from(phase, key, bound, ev))
    return out


def _client_bounds(a: Assertion, phase: str, sample: Sample,
                   confidence: float) -> list[AssertionResult]:
    """Rates, counts and latencies of the records in `sample` (a phase, maybe one request)."""
    where = _where(phase, a.request)
    if sample.total < a.min_requests:
        return [_result(phase, "min_requests", f">= {a.min_requests}", str(sample.total),
                        INCONCLUSIVE, f"only {sample.total} requests were made {where}; "
                        "too few to judge", value=float(sample.total))]
    out: list[AssertionResult] = []
    if a.success_rate is not None:
        out.append(_rate(where, "success_rate", a.success_rate.defaulting(">="),
                         sample.successes, sample.total, confidence))
    if a.error_rate is not None:
        out.append(_rate(where, "error_rate", a.error_rate.defaulting("<="),
                         sample.total - sample.successes, sample.total, confidence))
    for kind, outcomes in COUNT_BOUNDS.items():
        bound = getattr(a, kind)
        if bound is not None:
            out.append(_count(where, kind, bound, sample.count(*outcomes), sample.total))
    for kind, q in _PERCENTILES.items():
        bound = getattr(a, kind)
        if bound is not None:
            out.append(_latency(where, kind, bound.defaulting("<="), sample.latency(q)))
    for item in out:
        item.phase = phase
    return out


def _where(phase: str, request: str | None) -> str:
    """How messages name what was judged: 'during fault', 'during fault (chat requests)'."""
    return f"during {phase}" + (f" ({request} requests)" if request is not None else "")


def _rst_from(phase: str, key: str, bound: Comparison, ev: Evidence) -> AssertionResult:
    """RSTs a service sent (to anyone, or `sender->receiver`), counted in the packet capture."""
    kind = f"rst_from.{key}"
    sender, _, receiver = key.partition("->")
    window = ev.windows.get(phase)
    if ev.capture is None:
        return _result(phase, kind, bound.text, "n/a", INCONCLUSIVE,
                       "rst_from needs packet captures: set `capture: true` or run with --capture")
    start, end = (window.start, window.end) if window is not None else (float("-inf"), float("inf"))
    observed = ev.capture.rst_count(sender.strip(), receiver.strip() or None, start, end)
    status = PASS if bound.holds(observed) else FAIL
    message = "" if status == PASS else (
        f"{sender.strip()} sent {observed} TCP RST(s)"
        + (f" to {receiver.strip()}" if receiver else "") + f" during {phase} (packet capture), "
        f"expected {bound.text}")
    return _result(phase, kind, bound.text, str(observed), status, message, float(observed))


def _result(phase: str, kind: str, bound: str, observed: str, status: str, message: str,
            value: float | None = None, ci: tuple[float, float] | None = None) -> AssertionResult:
    return AssertionResult(phase, kind, bound, observed, status == PASS, message, status=status,
                           ci_low=None if ci is None else round(ci[0], 5),
                           ci_high=None if ci is None else round(ci[1], 5), value=value)


def _rate(where: str, kind: str, bound: Comparison, hits: int, total: int,
          confidence: float) -> AssertionResult:
    if total == 0:
        return _result(where, kind, bound.text, "n/a", INCONCLUSIVE, f"no requests {where}")
    point = hits / total
    low, high = wilson(hits, total, confidence)
    status = judge_interval(bound, low, high, point)
    shown = f"{point:.4f}"
    interval = f"[{low:.4f}, {high:.4f}] at {confidence:.0%}"
    if status == PASS:
        message = ""
    elif status == FAIL:
        message = f"{kind} was {shown} ({hits}/{total}, {interval}) {where}, expected {bound.text}"
    else:
        message = (f"{kind} {shown} ({hits}/{total}) {where}: the interval {interval} "
                   f"straddles {bound.text}; run longer or with more users to decide")
    return _result(where, kind, bound.text, shown, status, message, point, (low, high))


def _count(where: str, kind: str, bound: Comparison, observed: int, total: int) -> AssertionResult:
    status = PASS if bound.holds(observed) else FAIL
    message = "" if status == PASS else (
        f"{observed} of {total} requests {where}: {EXPLAIN[kind]} (expected {bound.text})"
    )
    return _result(where, kind, bound.text, str(observed), status, message, float(observed))


def _latency(where: str, kind: str, bound: Comparison, observed: float | None) -> AssertionResult:
    if observed is None:
        return _result(where, kind, bound.text, "n/a", INCONCLUSIVE, f"no requests {where}")
    limit = bound if bound.is_duration else Comparison(bound.op, bound.value / 1000, bound.text)
    status = PASS if limit.holds(observed) else FAIL
    shown = f"{observed * 1000:.1f}ms"
    message = "" if status == PASS else (
        f"{kind} latency was {shown} {where}, expected {bound.text}")
    return _result(where, kind, bound.text, shown, status, message, observed)


def _recovery(phase: str, a: Assertion, ev: Evidence, confidence: float) -> AssertionResult:
    """Measured over the phase by chaos.verdict.recovery, the report card's own rule."""
    assert a.recovers_within is not None
    window = ev.windows.get(phase)
    bound = f"<= {format_duration(a.recovers_within)}"
    if window is None:
        return _result(phase, "recovers_within", bound, "n/a", INCONCLUSIVE,
                       "recovery is measured within one phase; name the phase")
    found = recovery.phase_recovery(ev.aggregate.slots, window.start, window.end, phase,
                                    ev.changes, a.recovery_success_rate, confidence)
    if found is None or found.seconds is None:
        return _result(phase, "recovers_within", bound, "never", FAIL,
                       f"success rate never got back to {a.recovery_success_rate:.0%} "
                       f"during {phase}")
    seen = recovery.shown(found)
    status = PASS if found.seconds <= a.recovers_within else FAIL
    message = "" if status == PASS else (
        f"traffic recovered {seen} after {found.since} (at {found.healthy_at:.2f}s), "
        f"expected {bound}")
    return _result(phase, "recovers_within", bound, seen, status, message, found.seconds)


def _amplification(phase: str, bound: Comparison, client_requests: int,
                   ev: Evidence) -> AssertionResult:
    """Requests that reached the upstream per client request (1.0 = no retries)."""
    window = ev.windows.get(phase)
    samples = ev.upstream
    if window is None or not samples or client_requests == 0:
        return _result(phase, "retry_amplification", bound.text, "n/a", INCONCLUSIVE,
                       "no upstream request counter samples (probes.upstream_requests), "
                       f"no upstream witness, or no client requests during {phase}")
    reached = counters.growth(samples, window.start, window.end)
    if reached is None:
        return _result(phase, "retry_amplification", bound.text, "n/a", INCONCLUSIVE,
                       f"no upstream request counter samples span {phase}")
    ratio = round(reached / client_requests, 6)  # float dust off a 1:1 counter
    status = PASS if bound.holds(ratio) else FAIL
    message = "" if status == PASS else (
        f"{reached:.0f} upstream requests for {client_requests} client requests during {phase} "
        f"(x{ratio:.2f}): a retry storm; expected {bound.text}")
    return _result(phase, "retry_amplification", bound.text, f"{ratio:.2f}", status, message, ratio)
