"""A run whose load generator fell short of load.rate: warned on the console and in the
report, noted in result.json; with open arrivals a would-be pass is inconclusive (exit 4).

The engine runs for real through its transport seam; the session only writes the records
(and dropped arrivals) a Locust run would have written, so no Locust or Docker is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.engine import run_scenario
from chaos.load.arrivals import DROPPED_FILE
from chaos.observe.events import EventBus
from chaos.observe.lines import describe
from chaos.scenario.loader import load_scenario
from chaos.verdict.result import Result
from tests.fixtures.recorded_session import RecordedSession, ok_record

SCENARIO = """\
name: rated
services:
  gateway: {build: docker/gateway, port: 8000}
load: {target: gateway, rate: 10, ARRIVAL requests: [{name: get, path: /}]}
phases: [{name: steady, duration: 4s}]
assertions: [{phase: steady, min_requests: 0, STATUS}]
"""


class RecordsOnly(RecordedSession):
    """A session that 'ran' 4 s of load: `started` requests and `dropped` arrivals."""

    def __init__(self, run_dir: Path, started: int, dropped: int) -> None:
        super().__init__(run_dir, 4.0)
        self.started, self.dropped = started, dropped

    def run(self) -> None:
        step = 4.0 / (self.started + self.dropped)
        times = [self.t0 + i * step for i in range(self.started + self.dropped)]
        self.write(ok_record(t, sched=t) for t in times[: self.started])
        with open(self.run_dir / DROPPED_FILE, "w") as out:
            out.writelines(json.dumps({"t": t}) + "\n" for t in times[self.started:])


def run(tmp_path: Path, started: int, dropped: int, arrival: str = "",
        status: str = "pass") -> tuple[Result, str]:
    path = tmp_path / "rated.yaml"
    path.write_text(SCENARIO.replace("ARRIVAL ", f"arrival: {arrival}, " if arrival else "")
                    .replace("STATUS", "success_rate: '>= 0'" if status == "pass" else
                             "resets: '> 0'"))
    scenario = load_scenario(path)
    lines: list[str] = []
    bus = EventBus()
    bus.subscribe(lambda event: lines.append(describe(event)))  # the console lines
    result = run_scenario(scenario, file=str(path), report_root=tmp_path / "reports",
                          quiet=True, bus=bus,
                          session_factory=lambda s, i, d, b: RecordsOnly(d, started, dropped))
    return result, "\n".join(lines)


def test_dropped_open_arrivals_make_a_passing_run_inconclusive(tmp_path: Path) -> None:
    result, console = run(tmp_path, started=30, dropped=10, status="pass")
    assert (result.verdict, result.exit_code) == ("inconclusive", 4)
    [check] = [a for a in result.assertions if a.kind == "arrival_rate"]
    assert check.status == "inconclusive" and check.observed == "7.5/s, 10 dropped"
    assert "warning: phase steady: the load generator could not keep up: 7.5 arrivals/s of " \
           "10/s requested (75%), 10 arrivals dropped" in console
    saved = json.loads((Path(result.report_dir) / "result.json").read_text())
    [phase] = saved["phase_stats"]
    assert (phase["requested_rate"], phase["arrival_rate"], phase["dropped_arrivals"]) == (
        10, 7.5, 10)
    assert saved["load_warnings"] == result.load_warnings and len(result.load_warnings) == 1
    html = (Path(result.report_dir) / "report.html").read_text()
    assert "load-warning" in html and "7.5 of 10, 10 dropped" in html


def test_a_failing_run_stays_failing_and_a_full_rate_is_not_flagged(tmp_path: Path) -> None:
    result, _ = run(tmp_path, started=30, dropped=10, status="fail")
    assert result.exit_code == 1, "fail beats inconclusive"
    result, console = run(tmp_path, started=40, dropped=0, status="pass")
    assert (result.exit_code, result.load_warnings) == (0, [])
    assert "could not keep up" not in console
    assert result.phase_stats[0].arrival_rate == 10.0


@pytest.mark.parametrize("started", [36, 30])
def test_closed_loop_shortfall_is_a_warning_only(tmp_path: Path, started: int) -> None:
    result, console = run(tmp_path, started=started, dropped=0, arrival="closed",
                          status="pass")
    assert result.exit_code == 0
    assert not [a for a in result.assertions if a.kind == "arrival_rate"]
    flagged = started < 0.95 * 40 - 1
    assert bool(result.load_warnings) == flagged
    assert ("closed-loop: each user waits for its response" in console) == flagged
