"""chaos explore without Docker: drawn schedules are valid scenarios, their YAML loads
back to an equal scenario, smaller schedules sort first, and the search loop shrinks
and writes what it found (with a fake run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.explore.runner import explore
from chaos.explore.schedule import map_assertions, scenario_yaml, to_scenario
from chaos.explore.strategies import (
    ALL_KINDS,
    CONTAINER_KINDS,
    TOXIC_BOUNDS,
    DrawnFault,
    Schedule,
    Window,
    parse_kinds,
    schedule_strategy,
    sort_key,
)
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import ContainerFault, Scenario, ToxicFault
from chaos.verdict.result import AssertionResult, Result

ROOT = Path(__file__).resolve().parents[2]
CRASH = load_scenario(ROOT / "scenarios" / "backend-crash.yaml")
RESET = load_scenario(ROOT / "scenarios" / "backend-reset.yaml")
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@SLOW
@given(st.data())
def test_drawn_schedules_are_valid_scenarios(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from([CRASH, RESET]))
    schedule = data.draw(schedule_strategy(original, 4.0))
    scenario = to_scenario(original, schedule, 4.0)
    # Model validation passes on the built scenario (built models are not re-validated).
    Scenario.model_validate(scenario.model_dump(mode="json", by_alias=True))
    names = [p.name for p in scenario.phases]
    assert names[0] == "baseline" and names[-1] == "recovery" and names[1] == "fault"
    assert scenario.services == original.services and scenario.load == original.load
    for fault in (f for p in scenario.phases for f in p.faults):
        if isinstance(fault, ToxicFault):
            assert fault.proxy in original.proxies
            for key, value in fault.toxic.attributes.items():
                low, high = TOXIC_BOUNDS[fault.toxic.type][key]
                assert low <= value <= high
        else:
            assert isinstance(fault, ContainerFault)
            assert fault.container != original.load.target
    assert {a.phase for a in scenario.assertions} <= {*names, None}


@SLOW
@given(st.data())
def test_written_yaml_loads_back_to_an_equal_scenario(tmp_path_factory: pytest.TempPathFactory,
                                                       data: st.DataObject) -> None:
    original = data.draw(st.sampled_from([CRASH, RESET]))
    schedule = data.draw(schedule_strategy(original, 3.0))
    scenario = to_scenario(original, schedule, 3.0, name="found-one")
    path = tmp_path_factory.mktemp("found") / "found.yaml"
    path.write_text(scenario_yaml(scenario, "a header\nsecond line"))
    assert path.read_text().startswith("# a header\n# second line\n")
    assert load_scenario(path) == scenario


def test_killed_containers_are_restored() -> None:
    kill = DrawnFault("kill", "backend")
    schedule = Schedule((Window(3, (kill,)), Window(3, (kill,))))
    phases = to_scenario(CRASH, schedule, 3).phases
    assert [[f.describe() for f in p.faults] for p in phases] == [
        [], ["kill container backend"], [], ["start container backend"]]


def test_assertions_written_for_the_original_fault_keep_only_invariants() -> None:
    mapped = map_assertions(CRASH, ["fault", "fault-2"])
    by_phase = {(a.phase, k) for a in mapped
                for k, v in a.model_dump(exclude={"phase"}, exclude_none=True).items()}
    assert ("fault", "resets") in by_phase and ("fault-2", "p99") in by_phase
    assert not any(k in ("graceful_errors", "breaker") for _, k in by_phase)
    assert ("recovery", "recovers_within") in by_phase
    assert ("baseline", "success_rate") in by_phase


def test_smaller_schedules_sort_first() -> None:
    mild = DrawnFault("latency", "backend", attributes=(("latency", 10), ("jitter", 0)))
    harsh = DrawnFault("latency", "backend", attributes=(("latency", 900), ("jitter", 0)))
    one = Schedule((Window(3, (mild,)),))
    ordered = [one, Schedule((Window(3, (harsh,)),)),
               Schedule((Window(3, (mild, mild)),)),
               Schedule((Window(3, (mild,)), Window(3, (mild,))))]
    assert sorted(reversed(ordered), key=sort_key) == ordered


def test_fault_kinds_are_parsed() -> None:
    assert parse_kinds(None) == ALL_KINDS
    assert parse_kinds("latency, kill") == ("latency", "kill")
    with pytest.raises(ValueError, match="unknown"):
        parse_kinds("latency,nonsense")
    assert set(CONTAINER_KINDS) < set(ALL_KINDS)


def _fake_run(scenario: Scenario, report_root: Path) -> Result:
    """Fails when any latency toxic is above 500 ms: the answer shrinks to 501 ms."""
    slow = [f for p in scenario.phases for f in p.faults
            if isinstance(f, ToxicFault) and f.toxic.attributes.get("latency", 0) > 500]
    verdict = "fail" if slow else "pass"
    assertions = [AssertionResult("fault", "p99", "< 1s", "1500ms", not slow, "")]
    return Result(scenario=scenario.name, file="", run_id="x", started_at="", duration_s=0.1,
                  verdict=verdict, exit_code=0, assertions=assertions,
                  report_dir=str(report_root / "x"))


def test_search_shrinks_and_writes_a_replayable_scenario(tmp_path: Path) -> None:
    outcome = explore(CRASH, phase_duration=3, max_examples=60, time_budget=60, seed=3,
                      kinds=("latency",), report_root=tmp_path / "reports",
                      found_dir=tmp_path / "found", db_dir=tmp_path / "db", run=_fake_run,
                      log=lambda _: None)
    assert outcome.found is not None and outcome.found_path is not None
    faults = outcome.found.schedule.faults
    assert len(faults) == 1 and len(outcome.found.schedule.windows) == 1
    assert dict(faults[0].attributes)["latency"] == 501
    replay = load_scenario(outcome.found_path)
    assert replay.phases[1].faults[0].toxic.attributes["latency"] == 501  # type: ignore[union-attr]
    text = outcome.found_path.read_text()
    assert "p99 < 1s: observed 1500ms" in text and "chaos run" in text
    assert (outcome.report_dir / "index.html").read_text().count("<tr>") >= 2


def test_nothing_found_and_the_budget_is_respected(tmp_path: Path) -> None:
    outcome = explore(CRASH, phase_duration=3, max_examples=5, time_budget=0, seed=1,
                      kinds=("reset_peer",), report_root=tmp_path, found_dir=tmp_path / "f",
                      db_dir=tmp_path / "db", run=_fake_run, log=lambda _: None)
    assert outcome.found is None and outcome.found_path is None
    assert len(outcome.tried) <= 1


def test_the_first_failure_is_tried_fault_by_fault() -> None:
    from chaos.explore.runner import single_fault_schedules

    a = DrawnFault("latency", "backend", attributes=(("latency", 900), ("jitter", 0)))
    b = DrawnFault("kill", "backend")
    singles = single_fault_schedules(Schedule((Window(1.5, (a, b)), Window(3, (b,)))), 3)
    assert singles == [Schedule((Window(3, (b,)),)), Schedule((Window(3, (a,)),))]
    assert single_fault_schedules(Schedule((Window(3, (b,)),)), 3) == []


@pytest.mark.parametrize("args", [["--faults", "nonsense"], ["--time-budget", "soon"],
                                  ["--max-examples", "0"], ["--phase-duration", "0.5s"],
                                  ["--set", "services.nope.env.A=1"]])
def test_bad_input_exits_2(tmp_path: Path, args: list[str]) -> None:
    from chaos.cli import main

    assert main(["explore", str(ROOT / "scenarios" / "backend-crash.yaml"), *args,
                 "--report-dir", str(tmp_path), "--found-dir", str(tmp_path / "f")]) == 2
