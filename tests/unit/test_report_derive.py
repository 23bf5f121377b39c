"""Derived figures: resilience score, recovery time, breaker transitions, retry amplification."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from report_cases import hand_built, recorded

from chaos.report import derive
from chaos.verdict.result import FaultRecord


def test_score_formula() -> None:
    # 1 pass, 1 fail, 1 inconclusive; phases with faults: fault (140 of 200 handled) and
    # recovery (200 of 200)
    result = hand_built()
    score, parts = derive.resilience_score(result)
    assert parts == {"A": 0.5, "G": 0.85}
    assert score == round(60 * 0.5 + 40 * 0.85) == 64


def test_score_bounds_and_absence() -> None:
    result = hand_built(status="pass")
    for item in result.assertions:
        item.status = "pass"
    result.phase_stats[1].counts = {"ok": 200}
    assert derive.resilience_score(result)[0] == 100
    result.assertions = []
    assert derive.resilience_score(result) == (100, {"G": 1.0})
    result.verdict = "error"
    assert derive.resilience_score(result) == (None, {})


def test_recorded_scores() -> None:
    assert recorded("pass").score == 100
    failing = recorded("fail").score
    assert failing is not None and failing < 70


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
