"""Bounds read from the upstream witness (chaos.witness): what the gateway sent upstream.

attempts_per_request: the most attempts one client request caused.
upstream_timeout: how long the gateway waited on an attempt before abandoning it (median).
retries_non_idempotent: POST/PATCH requests not marked idempotent sent upstream twice or more.
shed: share of client requests answered with an error and no attempt, the upstream healthy.
retry_amplification (no probes.upstream_requests counter): attempts per client request.

Without a witness (kind none) each is inconclusive, saying why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaos.scenario.checks import WITNESS_BOUNDS
from chaos.scenario.model import Assertion
from chaos.scenario.units import Comparison
from chaos.verdict.intervals import FAIL, INCONCLUSIVE, PASS
from chaos.verdict.result import AssertionResult

if TYPE_CHECKING:
    from chaos.verdict.evaluate import Evidence

_DEFAULT_OP = {"attempts_per_request": "<=", "upstream_timeout": "<=",
               "retries_non_idempotent": "==", "shed": "<="}


def _result(phase: str, kind: str, bound: str, observed: str, status: str, message: str,
            value: float | None = None) -> AssertionResult:
    return AssertionResult(phase, kind, bound, observed, status == PASS, message, status=status,
                           value=value)


def figures(ev: Evidence, phase: str, whole: str) -> dict[str, Any] | None:
    """M of the phase (the whole run's for `whole`), None without a witness."""
    if ev.witness is None:
        return None
    mechanisms = ev.witness.mechanisms()
    return mechanisms["whole"] if phase == whole else mechanisms["by_phase"].get(phase)


def no_witness(ev: Evidence, kind: str) -> str:
    why = ev.witness_note or "no proxy tap and no backend journal"
    return f"{kind} is read from the upstream witness, and this run had none ({why})"


def evaluate_witness(a: Assertion, phase: str, whole: str, ev: Evidence) -> list[AssertionResult]:
    out = []
    for kind in WITNESS_BOUNDS:
        bound: Comparison | None = getattr(a, kind)
        if bound is None:
            continue
        bound = bound.defaulting(_DEFAULT_OP[kind])
        m = figures(ev, phase, whole)
        if m is None:
            out.append(_result(phase, kind, bound.text, "n/a", INCONCLUSIVE, no_witness(ev, kind)))
        elif not m["requests"]:
            out.append(_result(phase, kind, bound.text, "n/a", INCONCLUSIVE,
                               f"no client requests during {phase}"))
        else:
            out.append(_JUDGES[kind](phase, bound, m))
    return out


def _judged(phase: str, kind: str, bound: Comparison, value: float, shown: str,
            failure: str) -> AssertionResult:
    status = PASS if bound.holds(value) else FAIL
    return _result(phase, kind, bound.text, shown, status, "" if status == PASS else
                   f"{failure} during {phase} (the upstream witness), expected {bound.text}", value)


def _attempts(phase: str, bound: Comparison, m: dict[str, Any]) -> AssertionResult:
    most = m["max_attempts"]
    return _judged(phase, "attempts_per_request", bound, float(most), str(most),
                   f"one client request caused {most} upstream attempts (mean "
                   f"{m['attempts_per_request'] or 0:.2f}, {m['retried']} requests retried)")


def _timeout(phase: str, bound: Comparison, m: dict[str, Any]) -> AssertionResult:
    median = m["upstream_timeout_s"]
    if median is None:
        return _result(phase, "upstream_timeout", bound.text, "n/a", INCONCLUSIVE,
                       f"the gateway abandoned no upstream attempt during {phase}: its "
                       "upstream timeout never fired")
    limit = bound if bound.is_duration else Comparison(bound.op, bound.value / 1000, bound.text)
    status = PASS if limit.holds(median) else FAIL
    message = "" if status == PASS else (
        f"the gateway waited {median:.2f}s (median, longest {m['upstream_timeout_max_s']:.2f}s, "
        f"{m['abandoned']} abandoned attempts) on the upstream before giving up during {phase} "
        f"(the upstream witness), expected {bound.text}")
    return _result(phase, "upstream_timeout", bound.text, f"{median:.2f}s", status, message,
                   median)


def _non_idempotent(phase: str, bound: Comparison, m: dict[str, Any]) -> AssertionResult:
    n = m["non_idempotent_retries"]
    return _judged(phase, "retries_non_idempotent", bound, float(n), str(n),
                   f"{n} non-idempotent requests (POST/PATCH not marked idempotent) reached "
                   "the upstream more than once: each retry may repeat its effect")


def _shed(phase: str, bound: Comparison, m: dict[str, Any]) -> AssertionResult:
    share = m["shed_share"] or 0.0
    return _judged(phase, "shed", bound, share, f"{share:.4f}",
                   f"{m['shed']} of {m['requests']} client requests ({share:.1%}) were answered "
                   "with an error and no upstream attempt while the upstream was healthy")


_JUDGES = {"attempts_per_request": _attempts, "upstream_timeout": _timeout,
           "retries_non_idempotent": _non_idempotent, "shed": _shed}


def amplification(phase: str, whole: str, bound: Comparison,
                  ev: Evidence) -> AssertionResult | None:
    """retry_amplification from the witness (attempts per client request); None without one."""
    m = figures(ev, phase, whole)
    if m is None or not m["requests"]:
        return None
    ratio = float(m["amplification"])
    status = PASS if bound.holds(ratio) else FAIL
    message = "" if status == PASS else (
        f"{m['client_attempts']} upstream attempts for {m['requests']} client requests during {phase} "
        f"(x{ratio:.2f}, the upstream witness): a retry storm; expected {bound.text}")
    return _result(phase, "retry_amplification", bound.text, f"{ratio:.2f}", status, message,
                   ratio)
