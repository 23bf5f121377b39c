"""Verdict maths: percentiles, rates, timeline buckets and every assertion kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ScenarioError
from chaos.load.classify import (
    CLOSED,
    CONNECT_TIMEOUT,
    GRACEFUL,
    OK,
    OK_AFTER_RETRY,
    OUTCOMES,
    READ_TIMEOUT,
    REFUSED,
    RESET,
)
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import Scenario
from chaos.verdict.evaluate import WHOLE_RUN, Evidence, evaluate
from chaos.verdict.histogram import percentile
from chaos.verdict.result import AssertionResult, PhaseWindow
from chaos.verdict.stats import Record, Sample, by_phase, read_records, timeline
from chaos.verdict.summary import phase_stats

WINDOWS = [PhaseWindow("baseline", 0.0, 10.0), PhaseWindow("fault", 10.0, 20.0, ["kill"]),
           PhaseWindow("recovery", 20.0, 30.0)]


def rec(t: float, phase: str, outcome: str = OK, latency_ms: float = 10.0,
        status: int = 200) -> Record:
    return Record(t=t, phase=phase, outcome=outcome, latency_s=latency_ms / 1000.0,
                  status=status, detail="")


def scenario(*assertions: dict[str, Any], probe: bool = True) -> Scenario:
    data: dict[str, Any] = {
        "name": "demo",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
        "phases": [{"name": w.name, "duration": w.end - w.start} for w in WINDOWS],
        "assertions": list(assertions),
    }
    if probe:
        data["probes"] = {"breaker": {"service": "gateway"}}
    return Scenario.model_validate(data)


def judge(records: list[Record], *assertions: dict[str, Any],
          breaker: list[tuple[float, float]] | None = None) -> list[AssertionResult]:
    return evaluate(scenario(*assertions), Evidence(records, WINDOWS, breaker or []))


def one(results: list[AssertionResult], kind: str) -> AssertionResult:
    found = [r for r in results if r.kind == kind]
    assert len(found) == 1, results
    return found[0]


def spread(phase: str, start: float, outcomes: list[str], latency_ms: float = 10.0,
           span: float = 10.0) -> list[Record]:
    """Records evenly spread over a phase."""
    step = span / max(len(outcomes), 1)
    return [rec(start + i * step, phase, o, latency_ms) for i, o in enumerate(outcomes)]


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1.0], 50, 1.0),
    ([1.0], 99, 1.0),
    ([1.0, 2.0], 50, 1.0),
    ([1.0, 2.0], 51, 2.0),
    ([15.0, 20.0, 35.0, 40.0, 50.0], 5, 15.0),     # the textbook nearest-rank example
    ([15.0, 20.0, 35.0, 40.0, 50.0], 30, 20.0),
    ([15.0, 20.0, 35.0, 40.0, 50.0], 40, 20.0),
    ([15.0, 20.0, 35.0, 40.0, 50.0], 50, 35.0),
    ([15.0, 20.0, 35.0, 40.0, 50.0], 100, 50.0),
    ([float(i) for i in range(1, 101)], 95, 95.0),
    ([float(i) for i in range(1, 101)], 99, 99.0),
    ([float(i) for i in range(1, 101)], 50, 50.0),
    ([float(i) for i in range(1, 11)], 95, 10.0),
    ([float(i) for i in range(1, 21)], 95, 19.0),
    ([float(i) for i in range(1, 1001)], 99, 990.0),
    ([float(i) for i in range(1, 101)], 0, 1.0),
])
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 95) is None
    assert Sample().latency(95) is None


def test_percentile_is_a_real_sample_never_an_interpolation() -> None:
    values = sorted([0.012, 0.013, 0.5, 0.011, 0.9, 0.014, 0.010])
    for q in (50, 95, 99, 100):
        assert percentile(values, q) in values


def test_sample_latency_sorts_unordered_input() -> None:
    sample = Sample()
    for ms in (90, 10, 50, 30, 70, 20, 60, 40, 80, 100):
        sample.add(rec(0.0, "x", latency_ms=ms))
    assert sample.latency(50) == pytest.approx(0.05)
    assert sample.latency(95) == pytest.approx(0.10)
    assert sample.latency(100) == pytest.approx(0.10)


def test_success_rate_counts_ok_and_ok_after_retry() -> None:
    sample = Sample()
    for outcome in [OK] * 6 + [OK_AFTER_RETRY] * 2 + [GRACEFUL, RESET]:
        sample.add(rec(0.0, "x", outcome))
    assert sample.total == 10
    assert sample.successes == 8
    assert sample.success_rate == pytest.approx(0.8)
    assert sample.count(RESET) == 1
    assert sample.count(GRACEFUL, RESET) == 2
    assert Sample().success_rate is None


def test_by_phase_groups_records() -> None:
    samples = by_phase([rec(0, "a"), rec(1, "b", RESET), rec(2, "a", GRACEFUL)])
    assert {k: v.total for k, v in samples.items()} == {"a": 2, "b": 1}
    assert samples["a"].success_rate == 0.5


def test_timeline_buckets_per_second() -> None:
    records = [rec(0.1, "p", OK, 10), rec(0.9, "p", RESET, 30), rec(1.0, "p", OK, 20),
               rec(2.5, "p", GRACEFUL, 40), rec(-0.5, "p"), rec(4.0, "p")]
    rows = timeline(records, end=3.5)
    assert [r["t"] for r in rows] == [0, 1, 2, 3]
    assert [r["total"] for r in rows] == [2, 1, 1, 0]
    assert rows[0][OK] == 1 and rows[0][RESET] == 1
    assert rows[2][GRACEFUL] == 1
    assert rows[0]["p50_ms"] == 10.0 and rows[0]["p99_ms"] == 30.0
    assert rows[3]["p95_ms"] is None
    for row in rows:
        assert set(OUTCOMES) <= set(row)
        assert sum(row[o] for o in OUTCOMES) == row["total"]


def test_read_records_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.ndjson"
    good = {"t": 101.5, "phase": "fault", "outcome": "reset", "latency_ms": 12.5, "status": 0,
            "detail": "ConnectionResetError"}
    path.write_text(json.dumps(good) + "\n" + '{"t": 102.0, "phase": "fau')
    records = list(read_records(path, t0=100.0))
    assert records == [Record(1.5, "fault", RESET, 0.0125, 0, "ConnectionResetError")]
    assert list(read_records(tmp_path / "missing.ndjson", 0.0)) == []


def test_phase_stats() -> None:
    records = (spread("baseline", 0, [OK] * 9 + [GRACEFUL], latency_ms=100)
               + spread("fault", 10, [RESET] * 5) + [rec(35, "warmup")])
    stats = {s.name: s for s in phase_stats(records, WINDOWS)}
    assert [s for s in stats] == ["baseline", "fault", "recovery"]
    assert stats["baseline"].total == 10
    assert stats["baseline"].success_rate == pytest.approx(0.9)
    assert stats["baseline"].counts == {GRACEFUL: 1, OK: 9}
    assert stats["baseline"].p95_ms == 100.0
    assert stats["baseline"].rps == 1.0
    assert stats["fault"].counts == {RESET: 5} and stats["fault"].success_rate == 0.0
    assert stats["recovery"].total == 0 and stats["recovery"].success_rate is None
    assert stats["recovery"].p99_ms is None


# --------------------------------------------------------------------------- evaluate


def _mentions(result: AssertionResult, *texts: str) -> None:
    for text in texts:
        assert text in result.message, (text, result.message)


def test_success_rate_pass_fail_and_inconclusive() -> None:
    """The verdict uses the Wilson interval: 99/100 cannot prove >= 0.99, 999/1000 proves >= 0.98."""
    records = (spread("baseline", 0, [OK] * 999 + [RESET]) + spread("fault", 10, [OK] * 5
                                                                     + [GRACEFUL] * 5)
               + spread("recovery", 20, [OK] * 99 + [RESET]))
    results = judge(records, {"phase": "baseline", "success_rate": ">= 0.98"},
                    {"phase": "fault", "success_rate": ">= 0.99"},
                    {"phase": "recovery", "success_rate": ">= 0.99"})
    passed, failed, unsure = results
    assert (passed.phase, passed.kind, passed.passed, passed.observed) == (
        "baseline", "success_rate", True, "0.9990")
    assert passed.message == "" and passed.status == "pass"
    assert passed.ci_low is not None and 0.99 < passed.ci_low < 0.999 < passed.ci_high <= 1.0
    assert not failed.passed and failed.observed == "0.5000" and failed.bound == ">= 0.99"
    assert failed.status == "fail"
    _mentions(failed, "0.5000", ">= 0.99", "fault")
    assert unsure.status == "inconclusive" and not unsure.passed
    _mentions(unsure, "0.9900", ">= 0.99", "recovery")


def test_error_rate() -> None:
    records = spread("fault", 10, [OK] * 8 + [GRACEFUL, RESET])
    ok = one(judge(records, {"phase": "fault", "error_rate": "<= 0.6"}), "error_rate")
    bad = one(judge(records, {"phase": "fault", "error_rate": "< 0.01"}), "error_rate")
    assert ok.passed and ok.observed == "0.2000"
    assert not bad.passed
    _mentions(bad, "0.2000", "< 0.01", "fault")


@pytest.mark.parametrize(("kind", "outcomes", "count"), [
    ("resets", [RESET], 3),
    ("refused", [REFUSED], 2),
    ("closed", [CLOSED], 4),
    ("timeouts", [CONNECT_TIMEOUT, READ_TIMEOUT], 2),
    ("graceful_errors", [GRACEFUL], 5),
    ("ok_after_retry", [OK_AFTER_RETRY], 6),
])
def test_counts(kind: str, outcomes: list[str], count: int) -> None:
    bad = (outcomes * count)[:count]
    records = spread("fault", 10, [OK] * 10 + bad)
    exact = one(judge(records, {"phase": "fault", kind: count}), kind)
    assert exact.passed and exact.observed == str(count) and exact.bound == f"== {count}"
    zero = one(judge(records, {"phase": "fault", kind: 0}), kind)
    assert not zero.passed
    _mentions(zero, str(count), "== 0", "fault", f"of {10 + count} requests")
    positive = one(judge(records, {"phase": "fault", kind: "> 0"}), kind)
    assert positive.passed


def test_resets_zero_passes_without_resets() -> None:
    records = spread("fault", 10, [OK] * 5 + [GRACEFUL] * 5)
    results = judge(records, {"phase": "fault", "resets": 0, "graceful_errors": "> 0"})
    assert [(r.kind, r.passed, r.observed) for r in results] == [
        ("resets", True, "0"), ("graceful_errors", True, "5")]


def test_ok_after_retry_fails_when_no_retry_succeeded() -> None:
    """The backend-reset contract: retries must have happened."""
    records = spread("fault", 10, [OK] * 10)
    result = one(judge(records, {"phase": "fault", "ok_after_retry": "> 0"}), "ok_after_retry")
    assert not result.passed and result.observed == "0"
    _mentions(result, "0 of 10", "> 0", "fault")


@pytest.mark.parametrize(("bound", "passes"), [
    ("< 300ms", True), ("<= 250ms", True), ("< 250ms", False), ("< 0.3s", True),
    ("< 1s", True), ("< 200ms", False),
    ("< 300", True), ("<= 250", True), ("< 250", False), ("< 200", False),  # bare: ms
    ("250ms", True), ("249ms", False), (300, True),  # no operator: an upper bound (<=)
])
def test_p95_bounds(bound: str | int, passes: bool) -> None:
    latencies = [100.0] * 90 + [250.0] * 6 + [900.0] * 4   # p95 = 250 ms, p99 = 900 ms
    records = [rec(i * 0.1, "baseline", OK, ms) for i, ms in enumerate(latencies)]
    result = one(judge(records, {"phase": "baseline", "p95": bound}), "p95")
    assert result.observed == "250.0ms"
    assert result.bound == (bound if isinstance(bound, str) and bound[0] in "<>=!"
                            else f"<= {bound}")
    assert result.passed is passes
    if not passes:
        _mentions(result, "250.0ms", bound, "baseline", "p95")


def test_p99_p50_and_max_latency() -> None:
    latencies = [100.0] * 90 + [250.0] * 6 + [900.0] * 4
    records = [rec(i * 0.1, "baseline", OK, ms)
               for i, ms in enumerate(latencies)]
    results = judge(records, {"phase": "baseline", "p50": "< 150ms", "p99": "< 1s",
                              "max_latency": "< 500"})
    assert [(r.kind, r.observed, r.passed) for r in results] == [
        ("p50", "100.0ms", True), ("p99", "900.0ms", True), ("max_latency", "900.0ms", False)]
    _mentions(results[2], "900.0ms", "< 500", "baseline")


def test_latency_counts_failed_requests_too() -> None:
    """Percentiles come from every request of the phase, errors included."""
    records = spread("fault", 10, [OK] * 50, latency_ms=5) + spread(
        "fault", 10, [READ_TIMEOUT] * 50, latency_ms=5000)
    result = one(judge(records, {"phase": "fault", "p95": "< 1s"}), "p95")
    assert not result.passed and result.observed == "5000.0ms"


def test_breaker_opens_within_passes() -> None:
    records = spread("fault", 10, [GRACEFUL] * 10)
    samples = [(9.5, 0.0), (10.4, 0.0), (11.2, 1.0), (12.0, 1.0)]
    result = one(judge(records, {"phase": "fault", "breaker": {"opens_within": "5s"}},
                       breaker=samples), "breaker.opens_within")
    assert result.passed
    assert result.observed == "1.20s"
    assert result.bound == "<= 5s"


def test_breaker_opens_too_late() -> None:
    records = spread("fault", 10, [GRACEFUL] * 10)
    samples = [(10.0, 0.0), (17.0, 1.0)]
    result = one(judge(records, {"phase": "fault", "breaker": {"opens_within": "5s"}},
                       breaker=samples), "breaker.opens_within")
    assert not result.passed and result.observed == "7.00s"
    _mentions(result, "7.00s", "<= 5s", "fault")


def test_breaker_never_opens() -> None:
    records = spread("fault", 10, [GRACEFUL] * 10)
    samples = [(t, 0.0) for t in (10.0, 12.0, 14.0, 16.0, 18.0)] + [(25.0, 1.0)]
    result = one(judge(records, {"phase": "fault", "breaker": {"opens_within": "5s"}},
                       breaker=samples), "breaker.opens_within")
    assert not result.passed
    assert result.observed == "never"
    _mentions(result, "never", "fault")


def test_breaker_closes_within() -> None:
    records = spread("recovery", 20, [OK] * 10)
    samples = [(20.1, 1.0), (22.0, 2.0), (23.5, 0.0)]
    ok = one(judge(records, {"phase": "recovery", "breaker": {"closes_within": "5s"}},
                   breaker=samples), "breaker.closes_within")
    late = one(judge(records, {"phase": "recovery", "breaker": {"closes_within": "2s"}},
                     breaker=samples), "breaker.closes_within")
    assert ok.passed and ok.observed == "3.50s"
    assert not late.passed
    _mentions(late, "3.50s", "<= 2s", "recovery")


def test_breaker_assertion_without_phase_is_not_silently_dropped(tmp_path: Path) -> None:
    text = (
        "name: demo\n"
        "services: {gateway: {build: docker/gateway, port: 8000}}\n"
        "load: {target: gateway, requests: [{name: get, path: /}]}\n"
        "probes: {breaker: {service: gateway}}\n"
        "phases: [{name: baseline, duration: 10s}, {name: fault, duration: 10s},"
        " {name: recovery, duration: 10s}]\n"
        "assertions: [{breaker: {opens_within: 5s}}]\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    try:
        loaded = load_scenario(path)
    except ScenarioError:
        return  # refusing the file is an acceptable answer
    records = spread("fault", 10, [GRACEFUL] * 10)
    results = evaluate(loaded, Evidence(records, WINDOWS, [(10.0, 0.0), (11.0, 0.0)]))
    assert [r.kind for r in results] == ["breaker.opens_within"]
    assert not results[0].passed


def test_recovers_within() -> None:
    # recovery phase 20..30: errors for 3 s, then successes
    records = [rec(20 + i * 0.25, "recovery", GRACEFUL) for i in range(12)]
    records += [rec(23 + i * 0.25, "recovery", OK) for i in range(28)]
    ok = one(judge(records, {"phase": "recovery", "recovers_within": "5s"}), "recovers_within")
    late = one(judge(records, {"phase": "recovery", "recovers_within": "2s"}),
               "recovers_within")
    assert ok.passed and ok.observed == "3.00s" and ok.bound == "<= 5s"
    assert not late.passed
    _mentions(late, "3.00s", "<= 2s", "recovery")


def test_recovers_never() -> None:
    records = spread("recovery", 20, [OK, GRACEFUL] * 20)
    result = one(judge(records, {"phase": "recovery", "recovers_within": "10s"}),
                 "recovers_within")
    assert not result.passed and result.observed == "never"
    _mentions(result, "never", "recovery", "95%")


def test_recovery_threshold_is_configurable() -> None:
    records = spread("recovery", 20, [OK, OK, OK, GRACEFUL] * 10)
    result = one(judge(records, {"phase": "recovery", "recovers_within": "1s",
                                 "recovery_success_rate": 0.7}), "recovers_within")
    assert result.passed and result.observed == "0.00s"


def test_recovered_means_every_later_window_is_healthy() -> None:
    from chaos.verdict.recovery import Slots, measure

    def seen(records: list[Record], end: float) -> float | None:
        slots = Slots()
        for r in records:
            slots.add(r.t, r.outcome == OK)
        found = measure(slots, 0.0, end, [], 0.95)
        return None if found is None else found.seconds

    records = ([rec(0.5, "r", OK)] + [rec(1.5, "r", RESET)]
               + [rec(2.5, "r", OK), rec(3.5, "r", OK)])
    assert seen(records, 5.0) == 2.5  # the first success after the reset
    assert seen([], 5.0) is None
    assert seen([rec(4.5, "r", OK)], 5.0) == 0.0  # never degraded
    relapse = records + [rec(4.5, "r", RESET), rec(5.5, "r", OK)]  # good, bad, good, bad, good
    assert seen(relapse, 6.0) == 5.5
    assert seen(relapse, 5.0) is None  # still failing when the window ends


def test_min_requests() -> None:
    records = spread("fault", 10, [OK] * 3)
    results = judge(records, {"phase": "fault", "min_requests": 10, "success_rate": ">= 0.5",
                              "resets": 0})
    assert len(results) == 1, "too few requests: nothing else is judged"
    result = results[0]
    assert result.kind == "min_requests" and not result.passed
    assert result.observed == "3" and result.bound == ">= 10"
    _mentions(result, "3", "fault", "too few")


def test_empty_phase_fails_by_default() -> None:
    result = judge([], {"phase": "recovery", "success_rate": ">= 0.99"})
    assert [(r.kind, r.passed, r.observed) for r in result] == [("min_requests", False, "0")]


def test_whole_run_assertion_uses_every_phase() -> None:
    records = (spread("baseline", 0, [OK] * 10) + spread("fault", 10, [RESET] * 10)
               + [rec(40.0, "warmup", RESET)])  # a phase unknown to the windows is left out
    results = judge(records, {"success_rate": ">= 0.2", "resets": "<= 10"})
    assert {r.phase for r in results} == {WHOLE_RUN}
    assert [(r.kind, r.observed, r.passed) for r in results] == [
        ("success_rate", "0.5000", True), ("resets", "10", True)]


def test_assertions_keep_scenario_order() -> None:
    records = spread("baseline", 0, [OK] * 10) + spread("fault", 10, [GRACEFUL] * 10)
    results = judge(records, {"phase": "fault", "resets": 0},
                    {"phase": "baseline", "success_rate": ">= 0.99", "p95": "< 1s"})
    assert [(r.phase, r.kind) for r in results] == [
        ("fault", "resets"), ("baseline", "success_rate"), ("baseline", "p95")]
