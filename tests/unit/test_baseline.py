"""Baselines: a run is compared with a previous one; only real regressions fail it."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.cli import main
from chaos.report.writer import load_result, result_json
from chaos.verdict.baseline import apply_baseline, breaker_open_s, compare, render_text
from chaos.verdict.result import (
    BreakerTransition,
    FaultRecord,
    PhaseStats,
    PhaseWindow,
    Result,
)


def run(ok: int = 990, total: int = 1000, p99: float = 120.0, recovery: float | None = 2.0,
        recovered: bool | None = True, opened_at: float | None = 11.0) -> Result:
    stats = [PhaseStats(name, total, {"ok": ok, "graceful_error": total - ok}, ok / total,
                        50.0, 90.0, p99, 300.0, 50.0) for name in ("baseline", "fault")]
    transitions = ([BreakerTransition(opened_at, "closed", "open", "fault")]
                   if opened_at is not None else [])
    return Result(scenario="s", file="", run_id="r1", started_at="", duration_s=30,
                  verdict="pass", exit_code=0,
                  phases=[PhaseWindow("baseline", 0, 10), PhaseWindow("fault", 10, 20)],
                  faults=[FaultRecord("fault", "kill container backend", 10.0, 20.0)],
                  phase_stats=stats, recovery_s=recovery, recovered=recovered,
                  breaker_transitions=transitions, score=90)


def regressed(checks: list) -> set[tuple[str, str]]:
    return {(c.metric, c.phase) for c in checks if c.regressed}


def test_a_run_is_no_regression_of_itself() -> None:
    checks = compare(run(), run())
    assert not regressed(checks)
    assert {c.metric for c in checks} == {"p99_ms", "success_rate", "recovery_s",
                                         "breaker_open_s"}


def test_noise_within_the_tolerance_passes() -> None:
    noisy = run(ok=985, p99=160.0, recovery=2.8, opened_at=11.8)
    assert not regressed(compare(run(), noisy))


def test_small_latencies_get_a_floor() -> None:
    assert not regressed(compare(run(p99=2.0), run(p99=40.0)))  # below the 50 ms floor


def test_each_metric_regresses_beyond_the_tolerance() -> None:
    worse = run(ok=900, p99=400.0, recovery=6.0, opened_at=15.0)
    assert regressed(compare(run(), worse)) == {
        ("p99_ms", "baseline"), ("p99_ms", "fault"), ("success_rate", "baseline"),
        ("success_rate", "fault"), ("recovery_s", "(run)"), ("breaker_open_s", "(run)")}


def test_overlapping_intervals_are_not_a_regression() -> None:
    # 20 requests: 20/20 versus 18/20 have overlapping Wilson intervals.
    assert ("success_rate", "fault") not in regressed(compare(run(20, 20), run(18, 20)))
    assert ("success_rate", "fault") in regressed(compare(run(2000, 2000), run(1800, 2000)))


def test_never_recovering_or_never_opening_is_a_regression() -> None:
    got = regressed(compare(run(), run(recovery=None, recovered=False, opened_at=None)))
    assert {("recovery_s", "(run)"), ("breaker_open_s", "(run)")} <= got
    assert breaker_open_s(run(opened_at=12.5)) == 2.5


def test_apply_sets_the_field_and_the_exit_code() -> None:
    new = run(ok=500)
    assert apply_baseline(new, run(), "old/result.json")
    assert new.exit_code == 1 and new.regression is not None
    assert new.regression["regressed"] and new.regression["baseline"] == "old/result.json"
    text = render_text(new.regression)
    assert "REGRESSION" in text and "success_rate" in text
    same = run()
    assert not apply_baseline(same, run(), "old/result.json") and same.exit_code == 0


def test_the_field_round_trips_through_result_json(tmp_path: Path) -> None:
    new = run(ok=500)
    apply_baseline(new, run(), "old.json")
    path = tmp_path / "result.json"
    path.write_text(result_json(new))
    again = load_result(path)
    assert again.regression == json.loads(json.dumps(new.regression))


def test_a_missing_baseline_is_bad_input(tmp_path: Path) -> None:
    code = main(["run", "scenarios/backend-crash.yaml", "--baseline",
                 str(tmp_path / "missing.json"), "--report-dir", str(tmp_path)])
    assert code == 2
