"""The whole engine without Docker, through the transport seam (``run_scenario(session_factory=)``).

``LoopbackSession`` is a ``RunSession`` whose environment lives on 127.0.0.1: the reference
backend and gateway apps run as subprocesses, the project's embedded Toxiproxy-API server
runs in-process and carries the scenario's proxies, and from there on everything is the
real thing: RunSession's phase loop, fault injection and toxic ledger, the Locust
subprocess, the verdict, the reports and the teardown on Ctrl-C. Only toxic faults can be
served this way; container and network faults need Docker and are refused up front.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import cast

import pytest
from apps import AppProcess, launch
from loopback import LOOPBACK, free_port

from chaos.engine import run_scenario
from chaos.errors import EnvironmentProblem, ScenarioError
from chaos.faults.base import FaultContext
from chaos.observe.events import EventBus, FaultInjected, ServiceReady, Setup
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.embedded import ServerThread
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.ledger import Ledger
from chaos.runtime.paths import project_root
from chaos.scenario.loader import REFERENCE, load_scenario
from chaos.scenario.model import Scenario, ToxicFault
from chaos.session import RunSession
from chaos.verdict.result import Result

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "backend-reset.yaml"
# Shorter phases, so more users: the success-rate bounds need a few hundred requests per phase
# before their confidence interval can decide (10 users for 2s leave them inconclusive).
SHORT = ["phases.0.duration=3s", "phases.1.duration=4s", "phases.2.duration=3s",
         "load.users=20", "load.spawn_rate=20"]


# ---------------------------------------------------------------- the loopback session


class _NoDocker:
    """Stands in for the Docker environment in the fault context: only toxics are served."""

    def __getattr__(self, name: str) -> object:
        raise EnvironmentProblem("container and network faults need Docker; "
                                 "the loopback session injects toxics only")


class LoopbackSession(RunSession):
    """Bring-up and teardown on loopback; the phase loop is RunSession's own."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        super().__init__(scenario, run_id, run_dir, bus)
        self.provider = "embedded (loopback, in-process)"
        self.proxy_host = LOOPBACK
        self.server: ServerThread | None = None
        self.ports: dict[str, int] = {}
        self.local: dict[str, AppProcess] = {}

    # -- bring-up ---------------------------------------------------------------------
    def run(self) -> None:
        self._refuse_what_needs_docker()
        # the ledger is RunSession's own (toxics, proxies, the Locust process); it lives in
        # the run folder, so tests never touch the checkout's .chaos/runs
        self.ledger = Ledger(self.run_id, self.scenario.name, folder=self.run_dir)
        self.ports = {name: free_port() for name in self.scenario.services}
        self.server = ServerThread(LOOPBACK, 0)
        self.server.start()
        self.proxies = ToxiproxyClient(self.server.url)
        self.proxies.wait_ready(timeout=10)
        for name, spec in self.scenario.proxies.items():
            self.ledger.intend("proxy", name, api=self.server.url)
            info = self.proxies.create_proxy(name, f"{LOOPBACK}:0", self._local(spec.upstream))
            self.listen_ports[name] = info.port
        self.bus.emit(Setup(message=f"Toxiproxy: embedded at {self.server.url}"))
        for name in self.scenario.start_order():
            self._start_local(name)
        self._start_probes()
        self._run_phases()

    def _refuse_what_needs_docker(self) -> None:
        where = f"scenario {self.scenario.name}"
        for i, phase in enumerate(self.scenario.phases):
            for j, fault in enumerate(phase.faults):
                if not isinstance(fault, ToxicFault):
                    raise ScenarioError("this fault needs Docker; the loopback session injects "
                                        "toxics only", where, key=f"phases[{i}].faults[{j}]")
        for name, service in self.scenario.services.items():
            if service.image is not None or not self._app(name).is_file():
                raise ScenarioError("the loopback session runs only the reference apps "
                                    "(a build folder with app.py)", where, key=f"services.{name}")
        if self.scenario.capture_spec() is not None:
            raise ScenarioError("packet capture needs Docker", where, key="capture")

    def _app(self, name: str) -> Path:
        build = self.scenario.services[name].build or ""
        return project_root() / build / "app.py"

    def _local(self, address: str) -> str:
        """A proxy upstream such as backend:8080 becomes the local backend's address."""
        host, _, port = address.rpartition(":")
        if host in self.ports:
            return f"{LOOPBACK}:{self.ports[host]}"
        return address

    def _substitute(self, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "proxy":
                return f"http://{LOOPBACK}:{self.listen_ports[name]}"
            return self._service_url(name)

        return REFERENCE.sub(repl, value)

    def _start_local(self, name: str) -> None:
        service = self.scenario.services[name]
        env = {k: self._substitute(v) for k, v in service.env_strings().items()}
        started = time.monotonic()
        self.local[name] = launch(self._app(name), self.ports[name],
                                  self.run_dir / f"{name}.log", env, name)
        self.images[name] = f"loopback: {self._app(name).relative_to(project_root())}"
        self._wait_healthy(self.local[name], service.health or "/healthz")
        self.bus.emit(ServiceReady(service=name, image=self.images[name],
                                   seconds=time.monotonic() - started))

    def _wait_healthy(self, service: AppProcess, path: str) -> None:
        if not service.healthy(path):
            raise EnvironmentProblem(f"{service.name} did not become healthy:\n{service.log()[-2000:]}")

    # -- the seams RunSession's phase loop and probes go through ------------------------
    def _service_url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}"

    def _load_target(self) -> str:
        return self._service_url(self.scenario.load.target)

    def _fault_context(self) -> FaultContext:
        assert self.proxies is not None
        return FaultContext(self.proxies, cast(RunEnvironment, _NoDocker()))

    # -- teardown ---------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            super().teardown()  # Locust, probes, the ledger (toxics, proxies), the API client
        finally:
            for service in reversed(list(self.local.values())):
                service.stop()
            self.logs = {name: service.log() for name, service in self.local.items()}
            if self.server is not None:
                self.server.stop()


# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Docker engine is reachable: anything that asks for one fails loudly."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)


def run_loopback(tmp_path: Path, *sets: str, bus: EventBus | None = None
                 ) -> tuple[Result, LoopbackSession]:
    sessions: list[LoopbackSession] = []

    def factory(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> LoopbackSession:
        sessions.append(LoopbackSession(scenario, run_id, run_dir, bus))
        return sessions[-1]

    scenario = load_scenario(SCENARIO, [*SHORT, *sets])
    result = run_scenario(scenario, file=str(SCENARIO), report_root=tmp_path / "reports",
                          quiet=True, bus=bus, session_factory=factory)
    assert len(sessions) == 1
    return result, sessions[0]


def failed(result: Result) -> set[tuple[str, str]]:
    return {(a.phase, a.kind) for a in result.assertions if a.status == "fail"}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_torn_down(session: LoopbackSession) -> None:
    assert session.locust is not None and session.locust.proc is not None
    pids = {"locust": session.locust.proc.pid}
    pids.update({name: s.process.pid for name, s in session.local.items()})
    assert set(pids) == {"locust", "backend", "gateway"}
    assert all(gone(pid) for pid in pids.values()), pids
    assert session.ledger is not None and not session.ledger.path.exists(), \
        "the ledger still lists something (a toxic, a proxy or the Locust process)"


# ---------------------------------------------------------------- tests


def test_reference_gateway_passes_backend_reset(tmp_path: Path) -> None:
    result, session = run_loopback(tmp_path)
    assert (result.verdict, result.exit_code) == ("pass", 0), (result.error, failed(result))
    run_dir = Path(result.report_dir)
    for name in ("report.html", "result.json", "junit.xml"):
        assert (run_dir / name).is_file(), name
    fault = next(s for s in result.phase_stats if s.name == "fault")
    assert fault.counts.get("ok_after_retry", 0) > 0, fault.counts  # the reset toxic fired
    assert [f.phase for f in result.faults] == ["fault"] and result.faults[0].end is not None
    assert result.upstream, "the upstream counter probe ran against the local backend"
    assert result.provider.startswith("embedded")
    assert_torn_down(session)


def test_gateway_without_error_mapping_fails_on_resets(tmp_path: Path) -> None:
    result, session = run_loopback(tmp_path, "services.gateway.env.GATEWAY_ERROR_MAPPING=off")
    assert (result.verdict, result.exit_code) == ("fail", 1), result.error
    assert ("fault", "resets") in failed(result), failed(result)
    assert {kind for _, kind in failed(result)} == {"resets"}, failed(result)
    assert_torn_down(session)


def test_ctrl_c_in_a_phase_interrupts_and_tears_everything_down(tmp_path: Path) -> None:
    bus = EventBus()

    def ctrl_c(event: object) -> None:
        """Ctrl-C while the reset toxic is active (the EventBus passes it on: not an Exception)."""
        if isinstance(event, FaultInjected) and event.phase == "fault":
            raise KeyboardInterrupt

    bus.subscribe(ctrl_c)
    result, session = run_loopback(tmp_path, bus=bus)
    assert (result.verdict, result.exit_code) == ("interrupted", 130)
    assert [w.name for w in result.phases] == ["baseline", "fault"]
    assert result.faults and result.faults[0].end is not None and result.faults[0].error is None
    assert not result.assertions  # no judgement on partial data
    assert (Path(result.report_dir) / "result.json").is_file()
    assert_torn_down(session)


def test_faults_that_need_docker_are_refused_before_anything_starts(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "backend-crash.yaml")
    sessions: list[LoopbackSession] = []

    def factory(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> LoopbackSession:
        sessions.append(LoopbackSession(scenario, run_id, run_dir, bus))
        return sessions[-1]

    with pytest.raises(ScenarioError, match="needs Docker"):
        run_scenario(scenario, report_root=tmp_path, quiet=True, session_factory=factory)
    assert sessions and sessions[0].server is None and not sessions[0].local


def test_locust_killed_mid_run_is_a_harness_failure_not_a_verdict(tmp_path: Path) -> None:
    """SIGKILL to the load generator in the fault phase: exit 3 naming Locust and the signal,
    result.json's environment_error and the report's banner, and everything torn down."""
    import json
    import signal

    sessions: list[LoopbackSession] = []
    bus = EventBus()

    def kill_locust(event: object) -> None:
        if isinstance(event, FaultInjected) and sessions and sessions[0].locust is not None:
            assert sessions[0].locust.proc is not None
            os.kill(sessions[0].locust.proc.pid, signal.SIGKILL)

    def factory(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> LoopbackSession:
        sessions.append(LoopbackSession(scenario, run_id, run_dir, bus))
        return sessions[-1]

    bus.subscribe(kill_locust)
    started = time.monotonic()
    result = run_scenario(load_scenario(SCENARIO, SHORT), file=str(SCENARIO),
                          report_root=tmp_path / "reports", quiet=True, bus=bus,
                          session_factory=factory)
    assert (result.verdict, result.exit_code) == ("error", 3), result.error
    assert result.error is not None and "Locust" in result.error, result.error
    assert "killed by SIGKILL" in result.error, result.error
    assert not result.assertions, "a broken harness gets no verdict on the gateway"
    assert time.monotonic() - started < 25, "the run stopped when Locust died, not at its end"
    run_dir = Path(result.report_dir)
    record = json.loads((run_dir / "result.json").read_text())["environment_error"]
    assert "Locust" in record["part"] and record["how"] == "killed by SIGKILL", record
    fault = next(w for w in result.phases if w.name == "fault")
    assert fault.start <= record["at"] <= record["affected_to"] <= fault.end + 1, (record, fault)
    assert record["affected_from"] <= record["at"], record
    html = (run_dir / "report.html").read_text()
    assert 'id="harness-failure"' in html and "killed by SIGKILL" in html
    assert_torn_down(sessions[0])
