"""Console progress: plain lines off a TTY, a live status line on one, quiet for CI logs."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from chaos.observe.console import Console, RecordTail
from chaos.observe.events import (
    AssertionEvaluated,
    FaultInjected,
    FaultRemoved,
    PhaseStarted,
    RunFinished,
    RunStarted,
    TeardownStarted,
)


def _records(path: Path, now: float, phase: str, outcomes: dict[str, int]) -> None:
    with open(path, "a") as handle:
        for outcome, n in outcomes.items():
            for i in range(n):
                handle.write(json.dumps({"t": now - 2 - i * 0.01, "phase": phase,
                                         "outcome": outcome}) + "\n")


def test_status_line_shows_phase_time_rps_outcomes_and_faults(tmp_path: Path) -> None:
    records = tmp_path / "requests.ndjson"
    records.touch()
    stream = io.StringIO()
    console = Console(stream, records=records, total=30, live=False, tick=60)
    now = time.time()
    console(PhaseStarted(phase="fault", duration=10, t=now - 3))
    console(FaultInjected(phase="fault", description="reset_peer on proxy backend"))
    _records(records, now, "fault", {"ok": 30, "reset": 3})
    console.tail.poll()
    status = console.status(now)
    assert status.startswith("> fault")
    assert "3.0s/10s" in status and "27s left" in status
    assert "ok 30" in status and "reset 3" in status
    assert "done/s" in status and "faults: reset_peer on proxy backend" in status
    console(FaultRemoved(phase="fault", description="reset_peer on proxy backend"))
    assert "faults:" not in console.status(now)
    console.close()


def test_long_requests_count_when_they_complete_and_in_flight_shows_the_rest(
        tmp_path: Path) -> None:
    """Six 10 s streams complete per second (60 in flight): not '0 rps'."""
    records = tmp_path / "requests.ndjson"
    now = time.time()
    with open(records, "w") as handle:
        for i in range(60):  # ended over the last 10 s, each after 10 s
            end = now - 0.05 - i / 6
            handle.write(json.dumps({"t": end - 10, "latency_ms": 10_000, "phase": "soak",
                                     "outcome": "ok"}) + "\n")
    status_dir = tmp_path / "load-status"
    status_dir.mkdir()
    (status_dir / "101.json").write_text(json.dumps({"t": now, "in_flight": 40, "dropped": 0}))
    (status_dir / "102.json").write_text(json.dumps({"t": now, "in_flight": 20, "dropped": 3}))
    (status_dir / "103.json").write_text(json.dumps({"t": now - 60, "in_flight": 99}))  # gone
    console = Console(io.StringIO(), records=records, total=30, live=False, tick=60)
    console(PhaseStarted(phase="soak", duration=30, t=now - 12))
    console.tail.poll()
    status = console.status(now)
    assert "| 6 done/s, 60 in flight, 3 dropped |" in status, status
    console.close()


def test_plain_mode_prints_one_line_per_event_and_no_escape_codes() -> None:
    stream = io.StringIO()
    console = Console(stream, live=False, tick=60)
    console(RunStarted(scenario="demo", run_id="r1"))
    console(PhaseStarted(phase="baseline", duration=2))
    console(TeardownStarted(run_id="r1"))
    console(RunFinished(verdict="pass", exit_code=0))
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert [line.split("] ", 1)[1].strip() for line in text.splitlines()][0] == "run r1 of scenario demo"
    assert "verdict: PASS (exit 0)" in text


def test_live_mode_redraws_the_status_line_in_place(tmp_path: Path) -> None:
    stream = io.StringIO()
    console = Console(stream, records=tmp_path / "none.ndjson", live=True, tick=0.05, total=5)
    console(PhaseStarted(phase="baseline", duration=5))
    time.sleep(0.3)
    console(FaultInjected(phase="baseline", description="kill container backend"))
    console(RunFinished(verdict="pass", exit_code=0))
    text = stream.getvalue()
    assert "\r\x1b[2K> baseline" in text
    assert "fault on: kill container backend" in text
    assert text.endswith("\n")


def test_quiet_keeps_only_what_did_not_pass_and_the_verdict() -> None:
    stream = io.StringIO()
    console = Console(stream, quiet=True, live=False)
    console(RunStarted(scenario="demo", run_id="r1"))
    console(PhaseStarted(phase="fault", duration=1))
    console(AssertionEvaluated(phase="fault", check="resets == 0", passed=True))
    console(AssertionEvaluated(phase="fault", check="p99 < 1s", passed=False, message="2.1s"))
    console(RunFinished(verdict="fail", exit_code=1))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "FAIL [fault] p99 < 1s" in lines[0] and "verdict: FAIL" in lines[1]
    assert console.thread is None  # no ticker in quiet mode


def test_record_tail_survives_partial_and_garbage_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.ndjson"
    path.write_text('{"t": 1, "phase": "a", "outcome": "ok"}\nnot json\n{"t": 2, "pha')
    tail = RecordTail(path)
    tail.set_phase("a")
    tail.poll()
    assert tail.counts == {"ok": 1}
    with open(path, "a") as handle:
        handle.write('se": "a", "outcome": "reset"}\n')
    tail.poll()
    assert tail.counts == {"ok": 1, "reset": 1}


def test_the_verdict_line_names_the_upstream_witness() -> None:
    from tests.fixtures.report_cases import hand_built, with_witness

    for result, shown in ((with_witness(), "; upstream witness: tap;"),
                          (with_witness("none"), "; upstream witness: none;"),
                          (hand_built(), None)):  # a run without a witness: the line as before
        stream = io.StringIO()
        console = Console(stream, quiet=True, live=False)
        console(RunFinished(verdict="pass", exit_code=0, report_dir="reports/x", result=result))
        text = stream.getvalue()
        if shown is None:
            assert "verdict: PASS (exit 0); reports in reports/x" in text
        else:
            assert shown in text and text.rstrip().endswith("reports in reports/x"), text
