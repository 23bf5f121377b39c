"""Assertions judged from the upstream witness (issue 18 item 4): breaker.* on inferred
intervals, the new bounds, retry_amplification and ok_after_retry without gateway help."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.scenario.model import Scenario
from chaos.verdict.evaluate import Evidence, evaluate
from chaos.verdict.result import AssertionResult, Result
from chaos.verdict.stats import read_records
from chaos.verdict.summary import phase_stats_from
from chaos.witness.analysis import analyse, relabel, store
from tests.fixtures.witness_files import T0, attempt, client, windows, write

WINDOWS = windows(("baseline", 0.0, 10.0), ("fault", 10.0, 20.0), ("recovery", 20.0, 30.0))
NO_BREAKER = "the upstream saw attempts all through the fault: no breaker"


def scenario(*assertions: dict[str, Any], probe: bool = False) -> Scenario:
    data: dict[str, Any] = {
        "name": "demo",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [
            {"name": "get", "path": "/"}, {"name": "chat", "method": "POST", "path": "/c"}]},
        "phases": [{"name": w.name, "duration": w.end - w.start} for w in WINDOWS],
        "assertions": list(assertions),
    }
    if probe:
        data["probes"] = {"breaker": {"service": "gateway"}}
    return Scenario.model_validate(data)


def evidence(tmp_path: Path, clients: list[Any], attempts: list[Any], *, witness: bool = True,
             breaker: list[tuple[float, float]] | None = None) -> Evidence:
    requests, upstream = write(tmp_path, clients, attempts)
    found = analyse(requests, upstream, T0, WINDOWS, {"get"}) if witness else None
    records = read_records(requests, T0)
    return Evidence(records if found is None else relabel(records, found.index), WINDOWS,
                    breaker or [], witness=found,
                    witness_note="" if witness else "the run's Toxiproxy has no tap")


def judge(ev: Evidence, *assertions: dict[str, Any], probe: bool = False) -> list[AssertionResult]:
    return evaluate(scenario(*assertions, probe=probe), ev)


def one(results: list[AssertionResult], kind: str) -> AssertionResult:
    [found] = [r for r in results if r.kind == kind]
    return found


def _flow(start: float, stop: float, prefix: str, *, status: int | None = 200,
          ended: str = "complete", outcome: str = "ok") -> tuple[list[Any], list[Any]]:
    clients, attempts = [], []
    for i in range(int(round((stop - start) / 0.05))):
        rid, t = f"{prefix}{i}", start + i * 0.05
        clients.append(client(rid, t, outcome, status=status or 502))
        attempts.append(attempt(rid, t, status=status, ended=ended))
    return clients, attempts


def breaker_run() -> tuple[list[Any], list[Any]]:
    """Healthy until 11 s, then fast 503s with no attempt; a failed probe at 12 s, a
    successful one at 14 s, traffic again from 14.1 s."""
    c1, a1 = _flow(10.0, 11.0, "h")
    fast = [client(f"f{i}", 11.0 + i * 0.05, "graceful_error", status=503, latency_ms=2)
            for i in range(60)]
    probes = [client("p1", 12.0, "graceful_error", status=502, latency_ms=2),
              client("p2", 14.0)]
    c2, a2 = _flow(14.1, 15.0, "r")
    return (c1 + fast + probes + c2, a1 + [attempt("p1", 12.0, status=None, ended="refused"),
                                          attempt("p2", 14.0, took=0.02)] + a2)


BREAKER = {"opens_within": "2s", "half_opens_after": "2s", "closes_within": "5s",
           "fails_fast_under": "200ms"}


def test_breaker_assertions_use_the_inferred_intervals_without_a_probe(tmp_path: Path) -> None:
    results = judge(evidence(tmp_path, *breaker_run()), {"phase": "fault", "breaker": BREAKER})
    seen = {r.kind: (r.status, r.observed) for r in results if r.kind.startswith("breaker")}
    assert seen == {"breaker.opens_within": ("pass", "1.00s"),
                    "breaker.half_opens_after": ("pass", "1.00s"),
                    "breaker.closes_within": ("pass", "4.02s"),
                    "breaker.fails_fast_under": ("pass", "2.0ms")}


def test_a_probe_that_read_nothing_gives_way_to_the_witness(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *breaker_run())
    result = one(judge(ev, {"phase": "fault", "breaker": {"opens_within": "2s"}}, probe=True),
                 "breaker.opens_within")
    assert (result.status, result.observed) == ("pass", "1.00s")


def test_probe_samples_win_over_the_witness(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *breaker_run(), breaker=[(10.0, 0.0), (15.0, 1.0), (16.0, 0.0)])
    result = one(judge(ev, {"phase": "fault", "breaker": {"opens_within": "2s"}}, probe=True),
                 "breaker.opens_within")
    assert (result.status, result.observed) == ("fail", "5.00s")


def test_a_gateway_without_a_breaker_fails_every_breaker_assertion(tmp_path: Path) -> None:
    clients, attempts = _flow(10.0, 15.0, "d", status=None, ended="refused",
                              outcome="graceful_error")
    for probe in (False, True):
        results = judge(evidence(tmp_path, clients, attempts),
                        {"phase": "fault", "breaker": BREAKER}, probe=probe)
        breaker = [r for r in results if r.kind.startswith("breaker")]
        assert len(breaker) == 4
        assert all(r.status == "fail" and NO_BREAKER in r.message and "no metric" not in
                   r.message for r in breaker)
        assert one(breaker, "breaker.fails_fast_under").bound == "< 200ms"


def test_breaker_without_probe_or_witness_is_inconclusive(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *breaker_run(), witness=False)
    [result] = [r for r in judge(ev, {"phase": "fault", "breaker": BREAKER})
                if r.kind.startswith("breaker")]
    assert result.status == "inconclusive" and "no tap" in result.message


def _retries() -> tuple[list[Any], list[Any]]:
    clients = [client("a", 11.0), client("b", 12.0, method="POST", name="chat"),
               client("c", 13.0, "graceful_error", status=504, latency_ms=2100),
               client("d", 12.5, "graceful_error", status=503, latency_ms=1)]
    attempts = [attempt("a", 11.0, status=502), attempt("a", 11.1, status=502),
                attempt("a", 11.2), attempt("b", 12.0, status=None, ended="upstream_reset",
                                            method="POST"),
                attempt("b", 12.1, method="POST"),
                attempt("c", 13.0, took=2.0, status=None, ended="gateway_rst"),
                attempt(None, 14.0)]
    return clients, attempts


def test_new_bounds_fail_with_what_the_upstream_saw(tmp_path: Path) -> None:
    results = judge(evidence(tmp_path, *_retries()),
                    {"phase": "fault", "attempts_per_request": "<= 2",
                     "retries_non_idempotent": 0, "upstream_timeout": "< 1s", "shed": "<= 0.1"})
    apr = one(results, "attempts_per_request")
    assert apr.status == "fail" and apr.observed == "3"
    assert "one client request caused 3 upstream attempts" in apr.message
    ni = one(results, "retries_non_idempotent")
    assert ni.status == "fail" and "1 non-idempotent requests" in ni.message
    timeout = one(results, "upstream_timeout")
    assert timeout.status == "fail" and "waited 2.00s" in timeout.message
    shed = one(results, "shed")
    assert shed.status == "fail" and shed.observed == "0.2500"
    assert "1 of 4 client requests" in shed.message


def test_new_bounds_pass(tmp_path: Path) -> None:
    results = judge(evidence(tmp_path, *_retries()),
                    {"phase": "fault", "attempts_per_request": "<= 3", "upstream_timeout": "< 3s",
                     "retries_non_idempotent": "<= 1", "shed": "< 0.5"})
    assert [r.status for r in results if r.kind != "min_requests"] == ["pass"] * 4


def test_new_bounds_without_a_witness_are_inconclusive_saying_why(tmp_path: Path) -> None:
    results = judge(evidence(tmp_path, *_retries(), witness=False),
                    {"phase": "fault", "attempts_per_request": "<= 2", "shed": 0})
    for kind in ("attempts_per_request", "shed"):
        result = one(results, kind)
        assert result.status == "inconclusive"
        assert result.message == (f"{kind} is read from the upstream witness, and this run "
                                  "had none (the run's Toxiproxy has no tap)")


def test_retry_amplification_from_the_witness_without_a_counter(tmp_path: Path) -> None:
    result = one(judge(evidence(tmp_path, *_retries()),
                       {"phase": "fault", "retry_amplification": "<= 1.4"}),
                 "retry_amplification")
    assert (result.status, result.observed) == ("fail", "1.50")  # the no-id attempt left out
    assert "6 upstream attempts for 4 client requests" in result.message


def test_ok_after_retry_counted_the_same_by_bounds_stats_and_mechanisms(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *_retries())
    assert one(judge(ev, {"phase": "fault", "ok_after_retry": 2}), "ok_after_retry").passed
    [fault] = [p for p in phase_stats_from(ev.aggregate, WINDOWS) if p.name == "fault"]
    assert ev.witness is not None
    mechanisms = ev.witness.mechanisms()["by_phase"]["fault"]
    assert fault.counts["ok_after_retry"] == mechanisms["ok_after_retry"] == 2


def test_findings_reach_result_json_and_back(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *breaker_run())
    result = Result("demo", "", "r", "", 1.0, "pass", 0, witness={"kind": "tap"})
    store(result, ev.witness)
    again = Result.from_dict(result.to_dict())
    assert again.witness["kind"] == "tap" and again.witness["matched"] == 2 + 20 + 18
    assert again.breaker_inferred[0]["closed_at"] == 14.02
    assert again.mechanisms["by_phase"]["fault"]["requests"] == 100
    assert len(again.attempt_timeline) == 30 and again.drilldown


def test_probe_samples_outside_the_phase_give_way_to_the_witness(tmp_path: Path) -> None:
    ev = evidence(tmp_path, *breaker_run(), breaker=[(30.5, 0.0), (30.75, 0.0)])
    result = one(judge(ev, {"phase": "fault", "breaker": {"opens_within": "2s"}}, probe=True),
                 "breaker.opens_within")
    assert (result.status, result.observed) == ("pass", "1.00s")


def test_a_counter_that_does_not_span_the_phase_gives_way_to_the_witness(tmp_path: Path) -> None:
    requests, upstream = write(tmp_path, *_retries())
    found = analyse(requests, upstream, T0, WINDOWS, {"get"})
    ev = Evidence(relabel(read_records(requests, T0), found.index), WINDOWS, [],
                  upstream=[(25.0, 100.0), (25.5, 101.0)], witness=found)
    result = one(judge(ev, {"phase": "fault", "retry_amplification": "<= 2"}),
                 "retry_amplification")
    assert (result.status, result.observed) == ("pass", "1.50")


def test_a_journal_cannot_tell_a_breaker_from_an_outage(tmp_path: Path) -> None:
    """With the backend's journal as the witness, a request that failed on the way to a dead
    backend left no record: in a phase with faults, breaker.* is inconclusive, saying why."""
    ev = evidence(tmp_path, *breaker_run())
    ev.witness_kind = "journal"
    data = scenario({"phase": "fault", "breaker": {"opens_within": "2s"}}).model_dump(
        by_alias=True, exclude_none=True)
    data["phases"][1]["faults"] = [{"container": "gateway", "action": "restart"}]
    [result] = [r for r in evaluate(Scenario.model_validate(data), ev)
                if r.kind.startswith("breaker")]
    assert result.status == "inconclusive" and "backend journal" in result.message
