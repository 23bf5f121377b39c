"""A fault `at` an offset inside its phase and `for` a duration, and restoring actions.

RunSession's own phase loop runs without Docker or Locust. For `at`/`for` the toxic is real:
the project's embedded Toxiproxy-API server runs in-process, the phase loop adds and removes
the toxic through the ordinary client, and a poller reads the proxy's state as any client
of the API would. Restores use a stand-in injector (a container `start` needs Docker); the
engine, result.json, the console and the report are the real ones.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from chaos.engine import run_scenario
from chaos.faults import switch as switch_module
from chaos.faults.base import FaultContext, Injected
from chaos.faults.containers import inject_container_action
from chaos.observe.events import EventBus
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.embedded import ServerThread
from chaos.runtime.environment import RunEnvironment
from chaos.scenario.model import ContainerFault, Scenario
from chaos.session import RunSession
from tests.fixtures.phase_loop import NoLoad, PhaseLoopOnly

LOOPBACK = "127.0.0.1"
SLACK = 0.15  # seconds: scheduling of the phase loop and of the poller




class ToxicPhasesOnly(RunSession):
    """The phase loop against a real (embedded) Toxiproxy server; its state polled."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        super().__init__(scenario, run_id, run_dir, bus)
        self.server = ServerThread(LOOPBACK, 0)
        self.samples: list[tuple[float, bool]] = []  # (epoch seconds, toxic on the proxy)
        self.stop_polling = threading.Event()

    def run(self) -> None:
        self.server.start()
        self.proxies = ToxiproxyClient(self.server.url)
        self.proxies.wait_ready(timeout=10)
        self.proxies.create_proxy("backend", f"{LOOPBACK}:0", f"{LOOPBACK}:9")
        self.locust = NoLoad()  # type: ignore[assignment]
        watcher = threading.Thread(target=self._poll, daemon=True)
        watcher.start()
        self.t0 = time.time()
        ctx = FaultContext(self.proxies, cast(RunEnvironment, None))
        try:
            for phase in self.scenario.phases:
                self._run_phase(phase, ctx)
        finally:
            self.stop_polling.set()
            watcher.join(timeout=5)

    def _poll(self) -> None:
        with requests.Session() as http:
            while not self.stop_polling.is_set():
                proxy = http.get(f"{self.server.url}/proxies/backend", timeout=2).json()
                self.samples.append((time.time(), bool(proxy["toxics"])))
                time.sleep(0.02)

    def teardown(self) -> None:
        if self.proxies is not None:
            self.proxies.close()
        self.server.stop()


def _timed_scenario() -> Scenario:
    return Scenario.model_validate({
        "name": "toxic-at-for",
        "services": {"backend": {"build": "docker/backend", "port": 8080},
                     "gateway": {"build": "docker/gateway", "port": 8000}},
        "proxies": {"backend": {"upstream": "backend:8080"}},
        "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
        "phases": [{"name": "baseline", "duration": "0.3s"},
                   {"name": "fault", "duration": "3s",
                    "faults": [{"proxy": "backend", "at": "1s", "for": "1s",
                                "toxic": {"type": "latency", "attributes": {"latency": 100}}}]}],
    })


def test_a_toxic_at_1s_for_1s_is_on_only_in_that_window(tmp_path: Path) -> None:
    sessions: list[ToxicPhasesOnly] = []

    def factory(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> RunSession:
        sessions.append(ToxicPhasesOnly(scenario, run_id, run_dir, bus))
        return sessions[-1]

    result = run_scenario(_timed_scenario(), report_root=tmp_path, session_factory=factory,
                          quiet=True)
    session = sessions[0]
    saved = json.loads((Path(result.report_dir) / "result.json").read_text(encoding="utf-8"))
    phase = next(p for p in saved["phases"] if p["name"] == "fault")
    [fault] = saved["faults"]
    # the record: on at +1 s, off at +2 s, the phase still 3 s long
    assert abs(fault["start"] - (phase["start"] + 1.0)) < SLACK
    assert abs(fault["end"] - (phase["start"] + 2.0)) < SLACK
    assert fault["removed"] is not None and fault["error"] is None and fault["kind"] == "fault"
    assert abs(phase["end"] - phase["start"] - 3.0) < SLACK
    assert fault["description"].endswith("at +1s for 1s")
    # the proxy's own state agrees with the record
    on = [t - session.t0 for t, toxic in session.samples if toxic]
    off = [t - session.t0 for t, toxic in session.samples if not toxic]
    assert on, "the toxic was never seen on the proxy"
    assert min(on) >= fault["start"] - 0.01 and max(on) <= fault["removed"] + 0.05
    assert max(on) - min(on) > 1.0 - 2 * SLACK
    start = phase["start"]
    assert any(start + 0.2 < t < start + 0.8 for t in off), "off before its at"
    assert any(start + 2.2 < t < start + 2.8 for t in off), "off after its for"


def test_two_faults_at_different_offsets_start_in_their_order(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    applied: list[tuple[str, float]] = []

    def record(fault: Any, ctx: Any, index: int) -> Injected:
        applied.append((fault.action, time.time()))
        return Injected(fault.describe())

    monkeypatch.setattr(switch_module, "inject", record)
    scenario = _containers([{"container": "backend", "action": "pause", "at": "0.6s"},
                            {"container": "backend", "action": "kill", "at": "0.2s"}])
    result = run_scenario(scenario, report_root=tmp_path, session_factory=PhaseLoopOnly,
                          quiet=True)
    assert [a for a, _ in applied] == ["kill", "pause"]
    assert abs(applied[1][1] - applied[0][1] - 0.4) < SLACK
    kill, pause = result.faults
    assert kill.end is not None and abs(kill.end - result.phases[0].end) < SLACK  # with the phase


# ---------------------------------------------------------------- restores




def _containers(faults: list[dict[str, Any]], recovery: list[dict[str, Any]] | None = None
                ) -> Scenario:
    phases: list[dict[str, Any]] = [{"name": "fault", "duration": "1s", "faults": faults}]
    if recovery is not None:
        phases.append({"name": "recovery", "duration": "1s", "faults": recovery})
    return Scenario.model_validate({
        "name": "restore",
        "services": {"backend": {"build": "docker/backend", "port": 8080},
                     "gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
        "phases": phases,
    })


def _no_docker(fault: Any, ctx: Any, index: int) -> Injected:
    return Injected(fault.describe())


def test_start_is_recorded_and_drawn_as_a_restore_not_a_fault_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    monkeypatch.setattr(switch_module, "inject", _no_docker)
    scenario = _containers([{"container": "backend", "action": "kill"}],
                           [{"container": "backend", "action": "start", "at": "0.2s"}])
    result = run_scenario(scenario, report_root=tmp_path, session_factory=PhaseLoopOnly)
    run_dir = Path(result.report_dir)
    saved = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    kill, start = saved["faults"]
    assert (kill["kind"], start["kind"]) == ("fault", "restore")
    assert start["end"] is None, "a restore is an instant, not a window"
    assert abs(start["start"] - saved["phases"][1]["start"] - 0.2) < SLACK
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('class="fault-window" data-fault="0"') == 2  # both charts: the kill
    assert 'class="fault-window" data-fault="1"' not in html
    assert html.count('class="restore-mark" data-fault="1"') == 2
    table = html[html.index('id="faults"'):]
    table = table[:table.index("</table>")]
    assert "restore: start container backend" in table
    assert "restore: kill" not in table
    err = capsys.readouterr().err
    assert "restore: start container backend" in err
    assert "fault on: start container backend" not in err
    assert "fault on: kill container backend" in err


def test_kill_for_a_while_is_undone_by_start() -> None:
    calls: list[str] = []

    class Container:
        def kill(self, signal: str) -> None:
            calls.append("kill")

        def start(self) -> None:
            calls.append("start")

    class Env:
        def container(self, name: str) -> Container:
            return Container()

    fault = ContainerFault.model_validate({"container": "backend", "action": "kill",
                                           "for": "2s"})
    injected = inject_container_action(fault, cast(FaultContext, type("C", (), {
        "env": Env()})()), 0)
    assert calls == ["kill"] and injected.undo is not None
    injected.undo()
    assert calls == ["kill", "start"]
    once = ContainerFault.model_validate({"container": "backend", "action": "kill"})
    assert inject_container_action(once, cast(FaultContext, type("C", (), {
        "env": Env()})()), 0).undo is None
