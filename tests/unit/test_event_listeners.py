"""Typed events are the spine: the console, the recorder and the report writer each react
to an event's class, never to its text; the reports are written on RunFinished(result)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from chaos.observe.console import Console
from chaos.observe.events import (
    EventBus,
    ImageBuilt,
    LabelledRemoved,
    LoadWarning,
    PhaseStarted,
    ProxyCreated,
    ProxyServerChosen,
    Recorder,
    RunFinished,
    TeardownFinished,
    TeardownStarted,
)
from chaos.report.listener import ReportWriter
from tests.fixtures.recorded_session import RecordedSession, ok_record
from tests.fixtures.report_cases import hand_built


def _lines(stream: io.StringIO) -> list[str]:
    return [line.split("] ", 1)[1].strip() for line in stream.getvalue().splitlines()]


def test_console_stops_its_ticker_and_prints_the_teardown_line_on_teardown_started() -> None:
    stream = io.StringIO()
    console = Console(stream, live=False, tick=60)
    console(PhaseStarted(phase="baseline", duration=2))
    assert console.thread is not None and not console.stop.is_set()
    console(TeardownStarted(run_id="r1"))
    assert console.stop.is_set()
    assert _lines(stream)[-1].endswith("tearing down run=r1")


def test_console_does_not_read_teardown_from_a_message_text() -> None:
    """A warning that happens to read 'tearing down' is a warning: the ticker goes on."""
    console = Console(io.StringIO(), live=False, tick=60)
    console(PhaseStarted(phase="baseline", duration=2))
    console(LoadWarning(text="tearing down run=r1"))
    assert not console.stop.is_set()
    console.close()


def test_console_lines_of_the_setup_events() -> None:
    stream = io.StringIO()
    console = Console(stream, live=False, tick=60)
    console(ProxyServerChosen(server="TOXIPROXY_URL http://127.0.0.1:8474",
                              note="the run starts no proxy container"))
    console(ProxyCreated(name="backend", listen="127.0.0.1:9001", upstream="127.0.0.1:8080"))
    console(ProxyCreated(name="backend", listen="127.0.0.1:9001", upstream="127.0.0.1:8080",
                         server_name="chaos-r1-backend"))
    console(ImageBuilt(service="gateway", image="gateway-chaos/gateway:abc"))  # recorded only
    console(ProxyCreated(name="backend", listen="0.0.0.0:9001", upstream="backend:8080",
                         shown=False))  # the run's own server: recorded only
    console(LabelledRemoved(run_id="r1"))
    console(TeardownFinished(run_id="r1"))  # recorded only
    assert _lines(stream) == [
        "Toxiproxy: TOXIPROXY_URL http://127.0.0.1:8474; the run starts no proxy container",
        "proxy backend: listening on 127.0.0.1:9001 -> 127.0.0.1:8080",
        "proxy backend (chaos-r1-backend): listening on 127.0.0.1:9001 -> 127.0.0.1:8080",
        "removed everything labelled run=r1",
    ]


def test_recorder_writes_each_event_with_its_type_and_no_result(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    recorder = Recorder(path)
    recorder(TeardownStarted(run_id="r1"))
    recorder(RunFinished(verdict="pass", exit_code=0, report_dir="reports/x",
                         result=hand_built(), records=tmp_path / "requests.ndjson", t0=1.0))
    recorder.close()
    started, finished = (json.loads(line) for line in path.read_text().splitlines())
    assert started["type"] == "TeardownStarted" and started["kind"] == "teardown_started"
    assert started["run_id"] == "r1" and isinstance(started["t"], float)
    assert finished["type"] == "RunFinished"
    assert {k: finished[k] for k in ("verdict", "exit_code", "report_dir")} == {
        "verdict": "pass", "exit_code": 0, "report_dir": "reports/x"}
    assert not {"result", "records", "t0"} & set(finished)


def test_report_writer_writes_the_reports_on_run_finished_given_only_the_bus(
        tmp_path: Path) -> None:
    bus = EventBus()
    bus.subscribe(ReportWriter(), critical=True)
    run_dir = tmp_path / "run"
    bus.emit(TeardownStarted(run_id="r1"))
    assert not run_dir.exists()
    result = hand_built()
    bus.emit(RunFinished(verdict=result.verdict, exit_code=result.exit_code,
                         report_dir=str(run_dir), result=result))
    names = {p.name for p in run_dir.iterdir()}
    assert {"result.json", "junit.xml", "report.html"} <= names
    assert json.loads((run_dir / "result.json").read_text())["run_id"] == result.run_id


def test_a_failing_report_writer_fails_the_run_instead_of_being_printed(tmp_path: Path) -> None:
    import pytest

    bus = EventBus()
    bus.subscribe(ReportWriter(), critical=True)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = hand_built()
    with pytest.raises(OSError):
        bus.emit(RunFinished(report_dir=str(blocked / "run"), result=result))


class _Recorded(RecordedSession):
    """A session that 'ran' one 2 s phase of ok requests (no Locust, no Docker)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, 2.0)

    def run(self) -> None:
        self.write(ok_record(self.t0 + i * 0.1) for i in range(20))


def test_the_engine_writes_the_reports_before_the_console_names_their_folder(
        tmp_path: Path, monkeypatch) -> None:
    """The engine only emits RunFinished(result): the writer, subscribed before the console,
    has written every report by the time the verdict line points at the folder."""
    import chaos.engine
    from chaos.engine import run_scenario
    from chaos.scenario.loader import load_scenario

    seen: dict[str, set[str]] = {}

    class Watching(Console):
        def __call__(self, event: object) -> None:
            if isinstance(event, RunFinished):
                seen["at verdict"] = {p.name for p in Path(event.report_dir).iterdir()}
            super().__call__(event)  # type: ignore[arg-type]

    monkeypatch.setattr(chaos.engine, "Console", Watching)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nservices:\n  gateway: {build: docker/gateway, port: 8000}\n"
                    "load: {target: gateway, requests: [{name: get, path: /}]}\n"
                    "phases: [{name: steady, duration: 2s}]\n"
                    "assertions: [{phase: steady, resets: 0}]\n")
    result = run_scenario(load_scenario(path), file=str(path), report_root=tmp_path / "r",
                          quiet=True, session_factory=lambda s, i, d, b: _Recorded(d))
    assert result.verdict == "pass", result.error
    assert {"result.json", "junit.xml", "report.html"} <= seen["at verdict"]


def _run_failing(tmp_path: Path, exc: BaseException) -> list[object]:
    from chaos.engine import run_scenario
    from chaos.scenario.loader import load_scenario

    class Failing(_Recorded):
        def run(self) -> None:
            raise exc

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nservices:\n  gateway: {build: docker/gateway, port: 8000}\n"
                    "load: {target: gateway, requests: [{name: get, path: /}]}\n"
                    "phases: [{name: steady, duration: 2s}]\n")
    seen: list[object] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    run_scenario(load_scenario(path), report_root=tmp_path / "r", quiet=True, bus=bus,
                 session_factory=lambda s, i, d, b: Failing(d))
    return seen


def test_a_failed_run_emits_run_failed_after_its_teardown(tmp_path: Path) -> None:
    from chaos.errors import EnvironmentProblem
    from chaos.observe.events import RunFailed

    seen = _run_failing(tmp_path, EnvironmentProblem("the backend did not start"))
    kinds = [type(e).__name__ for e in seen]
    assert kinds.index("TeardownStarted") < kinds.index("TeardownFinished") \
        < kinds.index("RunFailed") < kinds.index("RunFinished")
    [failed] = [e for e in seen if isinstance(e, RunFailed)]
    assert "the backend did not start" in failed.error
    assert seen[-1].verdict == "error"  # type: ignore[attr-defined]


def test_ctrl_c_emits_run_interrupted(tmp_path: Path) -> None:
    from chaos.observe.events import RunInterrupted

    seen = _run_failing(tmp_path, KeyboardInterrupt())
    assert any(isinstance(e, RunInterrupted) for e in seen)
    assert seen[-1].verdict == "interrupted"  # type: ignore[attr-defined]
