"""The statistics behind verdicts: Wilson intervals, the histogram, breaker and retry contracts."""

from __future__ import annotations

import random

import pytest

from chaos.load.classify import GRACEFUL, OK, OK_AFTER_RETRY
from chaos.scenario.model import Scenario
from chaos.scenario.units import parse_comparison
from chaos.verdict.evaluate import Evidence, evaluate, overall
from chaos.verdict.histogram import EXACT_LIMIT, LatencyHistogram
from chaos.verdict.intervals import judge_interval, wilson
from chaos.verdict.result import PhaseWindow
from chaos.verdict.stats import Record

BASE = {
    "name": "demo",
    "services": {"gateway": {"build": "docker/gateway", "port": 8000},
                 "backend": {"build": "docker/backend", "port": 8080}},
    "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
    "probes": {"breaker": {"service": "gateway"},
               "upstream_requests": {"service": "backend"}},
    "phases": [{"name": "baseline", "duration": "10s"}, {"name": "fault", "duration": "10s"}],
}
WINDOWS = [PhaseWindow("baseline", 0.0, 10.0), PhaseWindow("fault", 10.0, 20.0)]


def judge(records, *assertions, breaker=(), upstream=()):
    scenario = Scenario.model_validate({**BASE, "assertions": list(assertions)})
    evidence = Evidence(records, WINDOWS, list(breaker), list(upstream))
    return evaluate(scenario, evidence)


def rec(t: float, phase: str, outcome: str, ms: float = 10.0) -> Record:
    return Record(t=t, phase=phase, outcome=outcome, latency_s=ms / 1000, status=200, detail="")


def test_wilson_matches_known_values() -> None:
    low, high = wilson(99, 100)
    assert low == pytest.approx(0.9455, abs=1e-4) and high == pytest.approx(0.9982, abs=1e-4)
    low, high = wilson(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    narrow, wide = wilson(95, 100, 0.80), wilson(95, 100, 0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


@pytest.mark.parametrize(("bound", "low", "high", "expected"), [
    (">= 0.99", 0.992, 0.999, "pass"), (">= 0.99", 0.95, 0.98, "fail"),
    (">= 0.99", 0.98, 0.995, "inconclusive"), ("<= 0.01", 0.0, 0.005, "pass"),
    ("<= 0.01", 0.02, 0.05, "fail"), ("< 0.01", 0.001, 0.02, "inconclusive"),
])
def test_interval_verdicts(bound: str, low: float, high: float, expected: str) -> None:
    assert judge_interval(parse_comparison(bound), low, high, (low + high) / 2) == expected


def test_too_few_requests_is_inconclusive_not_a_pass() -> None:
    records = [rec(i * 0.5, "baseline", OK) for i in range(20)]
    results = judge(records, {"phase": "baseline", "success_rate": ">= 0.99"})
    assert [r.status for r in results] == ["inconclusive"]
    assert overall(results) == "inconclusive"
    assert "straddles" in results[0].message and "20" in results[0].message


def test_min_requests_makes_a_phase_inconclusive() -> None:
    records = [rec(1.0, "baseline", OK)]
    results = judge(records, {"phase": "baseline", "min_requests": 50, "resets": 0})
    assert [(r.kind, r.status) for r in results] == [("min_requests", "inconclusive")]


def test_fail_beats_inconclusive() -> None:
    records = [rec(i * 0.5, "baseline", OK) for i in range(20)]
    records += [rec(10 + i * 0.5, "fault", GRACEFUL) for i in range(20)]
    results = judge(records, {"phase": "baseline", "success_rate": ">= 0.99"},
                    {"phase": "fault", "success_rate": ">= 0.5"})
    assert overall(results) == "fail"


def test_histogram_percentiles_stay_within_one_percent_on_long_runs() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-4, 1) for _ in range(EXACT_LIMIT * 3)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    assert histogram.exact is None, "past the limit only buckets are kept"
    assert len(histogram.buckets) < 2_000
    ordered = sorted(values)
    for q in (50, 95, 99, 99.9):
        exact = ordered[max(1, int(-(-q / 100 * len(values) // 1))) - 1]
        got = histogram.percentile(q)
        assert got is not None and abs(got - exact) / exact < 0.01, (q, got, exact)
    assert histogram.percentile(100) == max(values)


def test_fails_fast_under_uses_requests_answered_while_open() -> None:
    breaker = [(10.0 + i * 0.25, 1.0 if 11.0 <= 10.0 + i * 0.25 <= 15.0 else 0.0)
               for i in range(40)]
    fast = [rec(11.5 + i * 0.1, "fault", GRACEFUL, 2.0) for i in range(30)]
    slow = [rec(16.0 + i * 0.1, "fault", GRACEFUL, 900.0) for i in range(10)]
    results = judge(fast + slow, {"phase": "fault",
                                  "breaker": {"opens_within": "5s", "fails_fast_under": "50ms"}},
                    breaker=breaker)
    by_kind = {r.kind: r for r in results}
    assert by_kind["breaker.opens_within"].status == "pass"
    assert by_kind["breaker.fails_fast_under"].status == "pass"
    assert by_kind["breaker.fails_fast_under"].bound == "< 50ms"
    slow_open = [rec(11.5 + i * 0.1, "fault", GRACEFUL, 400.0) for i in range(30)]
    results = judge(slow_open, {"phase": "fault", "breaker": {"fails_fast_under": "50ms"}},
                    breaker=breaker)
    assert results[0].status == "fail" and "400.0ms" in results[0].message


def test_half_opens_after_is_measured_from_the_first_opening() -> None:
    breaker = [(10.0, 0.0), (11.0, 1.0), (12.0, 1.0), (13.2, 2.0), (13.5, 0.0)]
    records = [rec(10 + i * 0.1, "fault", GRACEFUL) for i in range(50)]
    result = judge(records, {"phase": "fault", "breaker": {"half_opens_after": "3s"}},
                   breaker=breaker)[0]
    assert result.status == "pass" and result.observed == "2.20s"
    never = judge(records, {"phase": "fault", "breaker": {"half_opens_after": "3s"}},
                  breaker=[(10.0, 0.0), (11.0, 1.0), (19.0, 1.0)])[0]
    assert never.status == "fail" and "never half-opened" in never.message


def test_retry_amplification_counts_upstream_requests_per_client_request() -> None:
    records = [rec(10 + i * 0.1, "fault", OK_AFTER_RETRY if i % 2 else OK) for i in range(100)]
    calm = [(9.9, 1000.0), (15.0, 1060.0), (20.1, 1120.0)]
    storm = [(9.9, 1000.0), (15.0, 1200.0), (20.1, 1400.0)]
    ok = judge(records, {"phase": "fault", "retry_amplification": "<= 1.5"}, upstream=calm)[0]
    assert ok.status == "pass" and ok.observed == "1.18"  # 120 over 10.2 s, 10 s of it inside
    bad = judge(records, {"phase": "fault", "retry_amplification": 1.5}, upstream=storm)[0]
    assert bad.status == "fail" and bad.bound == "<= 1.5" and "retry storm" in bad.message
    unknown = judge(records, {"phase": "fault", "retry_amplification": "<= 1.5"})[0]
    assert unknown.status == "inconclusive"


def test_a_one_to_one_counter_sampled_off_the_phase_bounds_reads_exactly_one() -> None:
    from chaos.report import derive
    from tests.fixtures.report_cases import hand_built

    # 10 client requests per second; the upstream counter is read every 0.7 s from 9.7 s,
    # so no sample falls on a phase bound (10 s, 20 s): nearest samples read 0.96-1.05
    records = [rec(10 + i / 10, "fault", OK) for i in range(100)]
    counter = [(9.7 + 0.7 * k, 10 * (9.7 + 0.7 * k)) for k in range(16)]
    assert counter[0][0] < 10 < counter[1][0] and counter[-2][0] < 20 < counter[-1][0]
    result = judge(records, {"phase": "fault", "retry_amplification": "== 1"}, upstream=counter)[0]
    assert result.status == "pass" and result.value == 1.0 and result.observed == "1.00"
    report = hand_built(seconds=30)  # phases of 10 s, 200 client requests each
    report.upstream = [(t, 2 * v) for t, v in counter]  # 20 a second reach the upstream
    assert derive.retry_amplification(report)[1] == {"fault": 1.0}
