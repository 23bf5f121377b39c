"""Derived figures: resilience score, recovery time, breaker transitions, retry amplification."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from chaos.report import derive
from chaos.verdict.result import AssertionResult, FaultRecord, PhaseStats
from tests.fixtures.report_cases import hand_built, recorded


def test_score_formula() -> None:
    # 1 pass, 1 fail, 1 inconclusive; phases with faults: fault (140 of 200 handled) and
    # recovery (200 of 200); seconds 10-19 saw resets (failing), 20-29 did not
    result = hand_built()
    score, parts = derive.resilience_score(result)
    assert parts == {"A": 0.5, "G": 0.85, "T": 0.5}
    assert score == round(40 * 0.5 + 20 * 0.85 + 40 * 0.5) == 57
    terms = {t.name: t for t in derive.score_terms(result)}
    assert terms["T"].basis == "10 failing of 20 s in phases fault, recovery"
    assert terms["A"].basis == "1 passed + ½ × 1 inconclusive of 3 assertions"
    assert [t.weight for t in terms.values()] == [40, 20, 40]
    assert [t.points for t in terms.values()] == [20, 17, 20]


def test_score_bounds_and_absence() -> None:
    result = hand_built(status="pass")
    for item in result.assertions:
        item.status = "pass"
    result.phase_stats[1].counts = {"ok": 200}
    for row in result.timeline:
        row.update(ok=20, graceful_error=0, reset=0)
    assert derive.resilience_score(result)[0] == 100
    result.assertions = []
    assert derive.resilience_score(result) == (100, {"G": 1.0, "T": 1.0})
    assert [t.weight for t in derive.score_terms(result)] == [33.33, 66.67]  # A's share moves over
    result.verdict = "error"
    assert derive.resilience_score(result) == (None, {})


def test_seconds_of_client_visible_failure_weigh_in_the_score() -> None:
    """The gateway itself down for 8 s of a 20 s fault phase: few requests fail (clients
    were refused fast and retried little), every assertion passed. The old formula
    (60 × A + 40 × G) gave 99; the 8 failing seconds make it 89 (fair)."""
    result = hand_built(status="pass")
    for item in result.assertions:
        item.status = "pass"
    result.phases[1].end = result.phases[2].start = 30.0
    result.phases[2].end = 40.0
    result.timeline = [{"t": t, "total": 20, "ok": 20} for t in range(40)]
    for row in result.timeline[10:18]:
        row.update(total=2, ok=0, refused=2)  # down: two refused connects a second
    result.phase_stats[1] = PhaseStats("fault", 256, {"ok": 240, "refused": 16}, 0.94, 1, 2, 3,
                                       4, 12.8)
    result.phase_stats[2] = PhaseStats("recovery", 200, {"ok": 200}, 1.0, 1, 2, 3, 4, 20.0)
    terms = {t.name: t for t in derive.score_terms(result)}
    assert terms["G"].value == round(440 / 456, 4)  # 0.965
    assert terms["T"].basis == "8 failing of 30 s in phases fault, recovery"
    assert derive.resilience_score(result)[0] == round(40 + 20 * 440 / 456 + 40 * 22 / 30) == 89


def test_failing_second() -> None:
    assert derive.failing_second({"t": 0, "total": 10, "ok": 9, "graceful_error": 1}) is False
    assert derive.failing_second({"t": 0, "total": 10, "ok": 9, "reset": 1}) is True
    # graceful answers only: the gateway did its job while the backend was gone
    assert derive.failing_second({"t": 0, "total": 5, "graceful_error": 5}) is False
    assert derive.failing_second({"t": 0, "total": 0}) is True  # nothing finished


def test_recorded_scores() -> None:
    # the backend dead for 9 s, the gateway answering 503s with a body all along
    assert derive.resilience_score(recorded("pass"))[0] == 100
    failing = derive.resilience_score(recorded("fail"))[0]
    assert failing is not None and failing < 70


def test_expected_errors_are_the_graceful_ones_the_phase_allows() -> None:
    passing = recorded("pass")  # fault: graceful_errors "> 0"; recovery: recovers_within
    assert derive.expected_error_phases(passing) == {"fault", "recovery"}
    assert derive.expected_errors(passing) == 1771 + 202
    result = hand_built()  # the fault phase asserts resets == 0 only: its 503s are not expected
    assert "fault" not in derive.expected_error_phases(result)
    result.assertions.append(AssertionResult("fault", "graceful_errors", "> 0", "60", True, ""))
    assert "fault" in derive.expected_error_phases(result)
    result.assertions[-1] = AssertionResult("fault", "graceful_errors", "== 0", "60", False, "")
    assert "fault" not in derive.expected_error_phases(result)  # expected none: violated
    result.assertions[-1] = AssertionResult("fault", "graceful_errors", "<= 10", "60", False, "")
    assert "fault" not in derive.expected_error_phases(result)  # allowed a few, got more


def test_breaker_transitions() -> None:
    result = hand_built()
    steps = [(t.from_state, t.to_state, t.phase) for t in derive.breaker_transitions(result)]
    assert steps == [("closed", "open", "fault"), ("open", "half-open", "recovery"),
                     ("half-open", "closed", "recovery")]


def test_the_report_shows_the_stored_recovery_and_never_recomputes_it() -> None:
    result = hand_built(seconds=10)  # a timeline and faults, but no measured recovery
    derive.enrich(result)
    assert (result.recovery_s, result.recovered, result.recovery) == (None, None, None)


def test_retry_amplification_from_the_upstream_counter() -> None:
    result = hand_built(seconds=30)  # phases of 10 s, 200 client requests each
    result.upstream = [(0.0, 0.0), (10.0, 200.0), (20.0, 800.0), (30.0, 1000.0)]
    whole, per_phase = derive.retry_amplification(result)
    assert per_phase == {"baseline": 1.0, "fault": 3.0, "recovery": 1.0}
    assert whole == round(1000 / 600, 3)


def test_fault_logs_are_cut_from_the_saved_logs(tmp_path: Path) -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    lines = [f"2024-01-01T00:00:{s:02d}.500000000Z line {s}" for s in range(30)]
    (tmp_path / "gateway.log").write_text("\n".join(lines) + "\n")
    faults = [FaultRecord("fault", "kill container backend", 10.0, 20.0)]
    derive.attach_fault_logs(faults, tmp_path, t0, before=2, after=3)
    text = faults[0].logs["gateway"].splitlines()
    assert text == [lines[8], lines[9], "---- 10.0s: kill container backend ----",
                    lines[10], lines[11], lines[12]]


def test_environment_versions() -> None:
    env = derive.environment(docker_version="27.0.1")
    assert set(env) >= {"gateway-chaos", "python", "locust", "docker engine"}
    assert env["docker engine"] == "27.0.1"
