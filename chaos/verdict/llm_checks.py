"""The LLM bounds (chaos.scenario.llm_bounds), judged per phase or for the whole run.

ttft and inter_token read the load's streamed records (ttft_ms, itl_ms); status and
retry_after_on_429 the client records; fallback_used, served_by, retry_after_honoured and
no_retry_on the provider journals joined by request id (chaos.llm.analysis). Missing
evidence (no streamed request, no provider journal, no request id joined) is inconclusive,
saying which; a failure names the evidence and its counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaos.scenario.model import Assertion
from chaos.scenario.units import Comparison
from chaos.verdict.histogram import LatencyHistogram
from chaos.verdict.intervals import FAIL, INCONCLUSIVE, PASS
from chaos.verdict.llm_figures import TokenTally
from chaos.verdict.result import AssertionResult

if TYPE_CHECKING:
    from chaos.llm.analysis import LlmFindings, LlmTally
    from chaos.verdict.evaluate import Evidence

QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
JOURNALS = "the provider journals"


def _result(phase: str, kind: str, bound: str, observed: str, status: str, message: str,
            value: float | None = None) -> AssertionResult:
    return AssertionResult(phase, kind, bound, observed, status == PASS, message, status=status,
                           value=value)


def _tokens(ev: Evidence, phase: str, whole: str) -> TokenTally:
    llm: LlmFindings | None = getattr(ev, "llm", None)
    return TokenTally() if llm is None else llm.tokens.tally(phase, whole)


def evaluate_llm(a: Assertion, phase: str, whole: str, ev: Evidence) -> list[AssertionResult]:
    out: list[AssertionResult] = []
    where = f"during {phase}"
    if a.ttft is not None or a.inter_token is not None:
        tokens = _tokens(ev, phase, whole)
        if a.ttft is not None:
            out += _token_latency("ttft", a.ttft.bounds(), phase, where, tokens.ttft, tokens)
        if a.inter_token is not None:
            out += _token_latency("inter_token", a.inter_token.bounds(), phase, where,
                                  tokens.itl, tokens)
    if a.status is not None or a.retry_after_on_429 is not None:
        tokens = _tokens(ev, phase, whole)
        for key, bound in (a.status or {}).items():
            out.append(_status(phase, where, key, bound, tokens))
        if a.retry_after_on_429 is not None:
            out.append(_retry_after_on_429(phase, where, a.retry_after_on_429.defaulting(">="),
                                           tokens))
    out += _journal_checks(a, phase, whole, where, ev)
    return out


def _token_latency(kind: str, bounds: dict[str, Comparison], phase: str, where: str,
                   hist: LatencyHistogram, tokens: TokenTally) -> list[AssertionResult]:
    what = "time to first token" if kind == "ttft" else "inter-token gap"
    out = []
    for key, raw in bounds.items():
        bound = raw.defaulting("<=")
        label = f"{kind}.{key}"
        if hist.count == 0:
            why = ("no streamed request got a first token (no ttft_ms in the load records)"
                   if kind == "ttft" else "no gaps between tokens were recorded (no itl_ms "
                   "in the load records: no stream sent two tokens)")
            out.append(_result(phase, label, bound.text, "n/a", INCONCLUSIVE,
                               f"{why} {where}: {kind} needs streaming LLM requests"))
            continue
        observed = hist.percentile(QUANTILES[key])
        assert observed is not None
        limit = bound if bound.is_duration else Comparison(bound.op, bound.value / 1000,
                                                          bound.text)
        status = PASS if limit.holds(observed) else FAIL
        basis = (f"{tokens.streamed} streamed requests" if kind == "ttft"
                 else f"{hist.count} gaps of {tokens.streamed} streamed requests")
        message = "" if status == PASS else (
            f"{what} {key} was {observed * 1000:.1f}ms over {basis} {where} (the load's "
            f"{'ttft_ms' if kind == 'ttft' else 'itl_ms'}), expected {bound.text}")
        out.append(_result(phase, label, bound.text, f"{observed * 1000:.1f}ms", status,
                           message, observed))
    return out


def _status(phase: str, where: str, key: str, bound: Comparison,
            tokens: TokenTally) -> AssertionResult:
    count = tokens.statuses.get(int(key), 0)
    status = PASS if bound.holds(count) else FAIL
    message = "" if status == PASS else (
        f"{count} of {tokens.requests} client responses {where} had HTTP {key}, "
        f"expected {bound.text}")
    return _result(phase, f"status.{key}", bound.text, str(count), status, message, float(count))


def _retry_after_on_429(phase: str, where: str, bound: Comparison,
                        tokens: TokenTally) -> AssertionResult:
    kind = "retry_after_on_429"
    if tokens.answered_429 == 0:
        return _result(phase, kind, bound.text, "n/a", INCONCLUSIVE,
                       f"the gateway answered no client request with 429 {where}")
    if not tokens.retry_after_recorded:
        return _result(phase, kind, bound.text, "n/a", INCONCLUSIVE,
                       "the load records carry no retry_after field (a load generator "
                       "older than the LLM records)")
    share = tokens.with_retry_after / tokens.answered_429
    status = PASS if bound.holds(share) else FAIL
    message = "" if status == PASS else (
        f"{tokens.with_retry_after} of {tokens.answered_429} 429 answers to clients {where} "
        f"carried Retry-After ({share:.4f}), expected {bound.text}")
    return _result(phase, kind, bound.text, f"{share:.4f}", status, message, share)


def _journal_checks(a: Assertion, phase: str, whole: str, where: str,
                    ev: Evidence) -> list[AssertionResult]:
    wanted: list[tuple[str, str]] = []
    if a.fallback_used is not None:
        wanted.append(("fallback_used", a.fallback_used.defaulting(">=").text))
    for name, bound in (a.served_by or {}).items():
        wanted.append((f"served_by.{name}", bound.defaulting(">=").text))
    if a.retry_after_honoured is not None:
        wanted.append(("retry_after_honoured", str(a.retry_after_honoured).lower()))
    for code in a.no_retry_on or []:
        wanted.append((f"no_retry_on.{code}", "0 re-attempts"))
    if not wanted:
        return []
    llm: LlmFindings | None = getattr(ev, "llm", None)
    if llm is None or not llm.journal:
        why = ("the scenario has no service with llm:" if llm is None or not llm.providers
               else f"no journal of {', '.join(llm.providers)} was read")
        return [_result(phase, kind, bound, "n/a", INCONCLUSIVE,
                        f"{kind.partition('.')[0]} is read from {JOURNALS}, and {why}")
                for kind, bound in wanted]
    tally = llm.tally(phase, whole)
    out: list[AssertionResult] = []
    if a.fallback_used is not None or a.served_by:
        missing = _unjoined(llm, tally, where)
        if missing is not None:
            out += [_result(phase, kind, bound, "n/a", INCONCLUSIVE, missing)
                    for kind, bound in wanted if kind.startswith(("fallback", "served_by"))]
        else:
            if a.fallback_used is not None:
                out.append(_fallback(phase, where, a.fallback_used.defaulting(">="), tally))
            for name, bound in (a.served_by or {}).items():
                out.append(_served_by(phase, where, name, bound.defaulting(">="), tally))
    if a.retry_after_honoured is not None:
        out.append(_honoured(phase, where, a.retry_after_honoured, tally))
    for code in a.no_retry_on or []:
        out.append(_no_retry(phase, where, code, tally))
    return out


def _unjoined(llm: LlmFindings, tally: LlmTally, where: str) -> str | None:
    """Why no success can be judged by who served it (None: some can)."""
    if tally.joined_successes:
        return None
    if not tally.successes:
        return f"no successful client request {where}"
    return (f"none of the {tally.successes} successful requests {where} was found in "
            f"{JOURNALS} ({llm.attempts} provider attempts journalled, {llm.matched} carried "
            "a client request id: does the gateway pass the request id on?)")


def _fallback(phase: str, where: str, bound: Comparison, tally: LlmTally) -> AssertionResult:
    share = tally.fallback / tally.joined_successes
    status = PASS if bound.holds(share) else FAIL
    message = "" if status == PASS else (
        f"{tally.fallback} of {tally.joined_successes} successful requests {where} were served "
        f"by a provider other than the first one tried ({share:.4f}; {_served(tally)}; "
        f"{JOURNALS}), expected {bound.text}")
    return _result(phase, "fallback_used", bound.text, f"{share:.4f}", status, message, share)


def _served(tally: LlmTally) -> str:
    return "served by " + ", ".join(f"{p} {n}" for p, n in sorted(tally.served.items()))


def _served_by(phase: str, where: str, name: str, bound: Comparison,
               tally: LlmTally) -> AssertionResult:
    share = tally.served.get(name, 0) / tally.joined_successes
    status = PASS if bound.holds(share) else FAIL
    message = "" if status == PASS else (
        f"{name} served {tally.served.get(name, 0)} of {tally.joined_successes} successful "
        f"requests {where} ({share:.4f}; {_served(tally)}; {JOURNALS}), expected {bound.text}")
    return _result(phase, f"served_by.{name}", bound.text, f"{share:.4f}", status, message,
                   share)


def _honoured(phase: str, where: str, wanted: bool, tally: LlmTally) -> AssertionResult:
    kind, bound = "retry_after_honoured", str(wanted).lower()
    count = sum(w.count for w in tally.waits.values())
    honoured = sum(w.honoured for w in tally.waits.values())
    if not count:
        status = PASS if wanted else INCONCLUSIVE
        return _result(phase, kind, bound, "n/a", status,
                       f"no retry after a Retry-After {where} ({JOURNALS})")
    share = honoured / count
    status = PASS if (honoured == count) == wanted else FAIL
    worst = [f"{p}: {w.count - w.honoured} of {w.count} re-attempts too soon"
             + (f", one {w.shortest.waited_s:.2f}s after asking {w.shortest.asked_s:g}s"
                if w.shortest is not None and not w.shortest.honoured else "")
             for p, w in sorted(tally.waits.items()) if w.honoured < w.count]
    if status == PASS:
        message = ""
    elif wanted:
        message = (f"{count - honoured} of {count} re-attempts after a 429/503 with Retry-After "
                   f"{where} came sooner than asked, on the same provider ("
                   f"{'; '.join(worst)}; {JOURNALS})")
    else:
        message = (f"all {count} re-attempts after a Retry-After {where} waited as asked "
                   f"({JOURNALS}), expected some that did not")
    return _result(phase, kind, bound, f"{share:.4f}", status, message, share)


def _no_retry(phase: str, where: str, code: int, tally: LlmTally) -> AssertionResult:
    kind = f"no_retry_on.{code}"
    by_provider: Any = tally.reattempted_after.get(code) or {}
    count = sum(by_provider.values())
    status = PASS if count == 0 else FAIL
    if status == PASS:
        return _result(phase, kind, "0 re-attempts", "0", PASS, "", 0.0)
    froms = (next(iter(by_provider)) if len(by_provider) == 1 else
             ", ".join(f"{p} ({n})" for p, n in sorted(by_provider.items())))
    return _result(phase, kind, "0 re-attempts", str(count), FAIL,
                   f"{count} of {tally.attempted} requests {where} were re-attempted after a "
                   f"{code} from {froms} ({JOURNALS})", float(count))
