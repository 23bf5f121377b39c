"""Figures computed from a Result, not measured directly: the breaker's transitions, the
resilience score and its terms, expected graceful errors, retry amplification.

They belong to the verdict (chaos.verdict.baseline compares them between runs); the reports
show them. Each definition is written out in the report too (recovery time, score), so a
reader can check the arithmetic; keep the texts below and the code in step.
"""

from __future__ import annotations

from chaos.outcomes import BREAKER_STATES, COUNT_BOUNDS, HANDLED
from chaos.scenario.units import parse_comparison
from chaos.verdict.counters import growth
from chaos.verdict.result import BreakerTransition, Result, ScoreTerm

# Assertions whose failure means the graceful errors of their phase were too many.
_COUNTS_GRACEFUL = ("graceful_errors", "success_rate", "error_rate", "recovers_within")

WEIGHTS = {"A": 40, "G": 20, "T": 40}
SCORE_FORMULA = (
    "score = round(40 × A + 20 × G + 40 × T), where A = (assertions passed + ½ × "
    "inconclusive) / assertions evaluated; G = requests answered acceptably (ok, "
    "ok_after_retry or graceful_error: a 5xx/429 with a body) / all requests; and T = 1 − "
    "failing seconds / seconds, a failing second being one in which clients saw a failure "
    "that is not graceful (reset, refused, timeout, closed, truncated, other) or in which "
    "nothing finished (a second of graceful 5xx/429 answers only is not failing: the gateway "
    "answered as it should). G and T are counted over the phases that "
    "inject faults (over the whole run when none does), each second in the phase holding its "
    "middle. A term without data drops out and the others share its weight; a run that "
    "errored or was interrupted has no score."
)
RECOVERY_DEFINITION = (
    "Recovery time: from the last fault change (a fault requested on or off) before the "
    "service was healthy again, to the start of the first successful request after which "
    "no 1 s window of requests (one starting at each request) had a success rate (ok + "
    "ok_after_retry) confidently below 95% (the upper end of its Wilson interval below "
    "95%: 94 of 100 is noise, 80 of 100 is not). Measured once, when the run was judged "
    "(chaos.verdict.recovery), from the first fault to the end of the run; recovers_within "
    "uses the same rule over its phase."
)
RETRY_DEFINITION = (
    "Retry amplification: requests that reached the upstream (the probes.upstream_requests "
    "counter, its growth during each phase, read at the phase bounds by linear "
    "interpolation between samples) per client request; 1.0 means no retries. n/a "
    "when the scenario does not probe an upstream request counter."
)


def enrich(result: Result) -> Result:
    """Fill the derived fields that are still empty (so re-rendering old JSON works too)."""
    if not result.breaker_transitions:
        result.breaker_transitions = breaker_transitions(result)
    if result.retry_amplification is None and result.upstream:
        result.retry_amplification, result.retry_amplification_by_phase = retry_amplification(result)
    if result.score is None or not result.score_terms:
        result.score_terms = score_terms(result)
        result.score, result.score_parts = resilience_score(result)
    return result


# -- breaker -----------------------------------------------------------------------------
def state_name(value: float) -> str:
    return BREAKER_STATES.get(float(value), f"{value:g}")


def phase_at(result: Result, t: float) -> str:
    for window in result.phases:
        if window.start <= t < window.end:
            return window.name
    return "" if not result.phases or t >= 0 else "(before)"


def breaker_transitions(result: Result) -> list[BreakerTransition]:
    out: list[BreakerTransition] = []
    previous: float | None = None
    for t, value in result.breaker:
        if previous is not None and value != previous:
            out.append(BreakerTransition(round(t, 3), state_name(previous), state_name(value),
                                         phase_at(result, t)))
        previous = value
    return out


# -- score -------------------------------------------------------------------------------
def resilience_score(result: Result) -> tuple[int | None, dict[str, float]]:
    """(score, {term: value}); score_terms(result) explains each term."""
    terms = score_terms(result)
    if not terms:
        return None, {}
    return int(round(sum(t.points for t in terms))), {t.name: t.value for t in terms}


def score_terms(result: Result) -> list[ScoreTerm]:
    """The terms of SCORE_FORMULA that have data, weights rescaled to sum to 100."""
    if result.verdict in ("error", "interrupted"):
        return []
    found = [t for t in (_assertion_term(result), _handled_term(result), _time_term(result)) if t]
    total = sum(WEIGHTS[name] for name, _, _, _ in found)
    return [ScoreTerm(name, meaning, round(value, 4), round(100 * WEIGHTS[name] / total, 2),
                      round(100 * WEIGHTS[name] / total * value, 2), basis)
            for name, meaning, value, basis in found]


_Term = tuple[str, str, float, str]


def _assertion_term(result: Result) -> _Term | None:
    if not result.assertions:
        return None
    passed = sum(1 for a in result.assertions if a.status == "pass")
    unsure = sum(1 for a in result.assertions if a.status == "inconclusive")
    value = (passed + 0.5 * unsure) / len(result.assertions)
    return ("A", "assertions held", value,
            f"{passed} passed + ½ × {unsure} inconclusive of {len(result.assertions)} assertions")


def scored_phases(result: Result) -> set[str]:
    """The phases G and T count over: those that inject faults, or all of them."""
    faulted = {w.name for w in result.phases if w.faults}
    return faulted or {p.name for p in result.phase_stats} | {w.name for w in result.phases}


def _handled_term(result: Result) -> _Term | None:
    names = scored_phases(result)
    stats = [p for p in result.phase_stats if p.name in names]
    total = sum(p.total for p in stats)
    if not total:
        return None
    handled = sum(p.counts.get(k, 0) for p in stats for k in HANDLED)
    return ("G", "requests answered acceptably", min(handled / total, 1.0),
            f"{handled} of {total} requests in {_names(result, names)}")


def failing_second(row: dict[str, object]) -> bool:
    """Clients saw a failure that is not graceful in this second, or nothing finished.

    A second of graceful 503s only is not failing: the backend was gone and the gateway
    said so with a body, which is the behaviour the harness asks of it; the verdict's
    assertions (success_rate, recovers_within) judge how long that lasted.
    """
    def count(key: str) -> float:
        value = row.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    if count("total") <= 0:
        return True
    return count("total") > sum(count(k) for k in HANDLED)


def _time_term(result: Result) -> _Term | None:
    names = scored_phases(result)
    seconds = [row for row in result.timeline
               if phase_at(result, float(row.get("t", 0)) + 0.5) in names]
    if not seconds:
        return None
    failing = sum(1 for row in seconds if failing_second(row))
    return ("T", "seconds without client-visible failure", 1 - failing / len(seconds),
            f"{failing} failing of {len(seconds)} s in {_names(result, names)}")


def _names(result: Result, names: set[str]) -> str:
    ordered = [w.name for w in result.phases if w.name in names] or sorted(names)
    return "phase " + ", ".join(ordered) if len(ordered) == 1 else "phases " + ", ".join(ordered)


# -- errors the scenario expected ---------------------------------------------------------
def _admits_positive(bound: str) -> bool:
    try:
        comparison = parse_comparison(bound)
    except ValueError:
        return False
    return any(comparison.holds(n) for n in (1.0, comparison.value, comparison.value + 1) if n > 0)


def expected_error_phases(result: Result) -> set[str]:
    """Phases whose graceful errors the scenario expected: an assertion there allows them
    (graceful_errors with a bound a positive count meets, or recovers_within: errors until
    the service is back) and none of the phase's assertions that count them failed."""
    out = set()
    for phase in {a.phase for a in result.assertions}:
        mine = [a for a in result.assertions if a.phase == phase]
        allows = any(a.kind == "recovers_within" or
                     (a.kind == "graceful_errors" and _admits_positive(a.bound)) for a in mine)
        violated = any(a.status == "fail" and a.kind in _COUNTS_GRACEFUL for a in mine)
        if allows and not violated:
            out.add(phase)
    return out


def expected_errors(result: Result) -> int:
    """Graceful errors in the phases that expected them (expected_error_phases)."""
    names = expected_error_phases(result)
    return sum(p.counts.get(k, 0) for p in result.phase_stats if p.name in names
               for k in COUNT_BOUNDS["graceful_errors"])  # with inband_error: told in the stream


# -- retry amplification -----------------------------------------------------------------
def retry_amplification(result: Result) -> tuple[float | None, dict[str, float]]:
    """(whole run, per phase) upstream requests per client request, from result.upstream."""
    if not result.upstream or not result.phases:
        return None, {}
    per_phase: dict[str, float] = {}
    reached_all, clients_all = 0.0, 0
    totals = {p.name: p.total for p in result.phase_stats}
    for window in result.phases:
        reached = growth(result.upstream, window.start, window.end)
        clients = totals.get(window.name, 0)
        if reached is None or not clients:
            continue
        per_phase[window.name] = round(reached / clients, 3)
        reached_all += reached
        clients_all += clients
    whole = round(reached_all / clients_all, 3) if clients_all else None
    return whole, per_phase
