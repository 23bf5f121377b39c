"""The whole engine without Docker, through the environment seam (``run_scenario(stack_factory=)``).

``LoopbackStack`` (chaos.stack.loopback) runs the environment on 127.0.0.1: the reference
backend and gateway apps as subprocesses, the project's embedded Toxiproxy-API server
in-process carrying the scenario's proxies; from there on everything is the real thing:
RunSession's phase loop, fault injection and toxic ledger, the Locust subprocess, the
verdict, the reports and the teardown on Ctrl-C. Only toxic faults can be served this way;
container and network faults need Docker and are refused up front.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chaos.engine import run_scenario
from chaos.errors import ScenarioError
from chaos.observe.events import EventBus, FaultInjected, PhaseStarted
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import Scenario
from chaos.stack.loopback import LoopbackStack
from chaos.verdict.result import Result

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "backend-reset.yaml"
# Shorter phases, so more users: the success-rate bounds need a few hundred requests per phase
# before their confidence interval can decide (10 users for 2s leave them inconclusive).
SHORT = ["phases.0.duration=3s", "phases.1.duration=4s", "phases.2.duration=3s",
         "load.users=20", "load.spawn_rate=20"]


# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Docker engine is reachable: anything that asks for one fails loudly."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)


class Stacks:
    """A stack factory that keeps each stack it made, and the Locust pid each run started."""

    def __init__(self, bus: EventBus) -> None:
        self.made: list[LoopbackStack] = []
        self.locust_pid: int | None = None
        bus.subscribe(self._note_locust)

    def __call__(self, scenario: Scenario, run_id: str, run_dir: Path,
                 bus: EventBus) -> LoopbackStack:
        self.made.append(LoopbackStack(scenario, run_id, run_dir, bus))
        return self.made[-1]

    def _note_locust(self, event: object) -> None:
        """Locust writes itself into the stack's ledger before the first phase."""
        if isinstance(event, PhaseStarted) and self.locust_pid is None and self.made:
            ledger = self.made[-1].ledger
            assert ledger is not None
            entry = next(e for e in ledger.outstanding() if e.name == "locust")
            self.locust_pid = int(entry.info["pid"])


def run_loopback(tmp_path: Path, *sets: str, bus: EventBus | None = None
                 ) -> tuple[Result, Stacks]:
    bus = bus or EventBus()
    stacks = Stacks(bus)
    scenario = load_scenario(SCENARIO, [*SHORT, *sets])
    result = run_scenario(scenario, file=str(SCENARIO), report_root=tmp_path / "reports",
                          quiet=True, bus=bus, stack_factory=stacks)
    assert len(stacks.made) == 1
    return result, stacks


def failed(result: Result) -> set[tuple[str, str]]:
    return {(a.phase, a.kind) for a in result.assertions if a.status == "fail"}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_torn_down(stacks: Stacks) -> None:
    [stack] = stacks.made
    assert stacks.locust_pid is not None
    pids = {"locust": stacks.locust_pid}
    pids.update({name: s.process.pid for name, s in stack.local.items()})
    assert set(pids) == {"locust", "backend", "gateway"}
    assert all(gone(pid) for pid in pids.values()), pids
    assert stack.ledger is not None and not stack.ledger.path.exists(), \
        "the ledger still lists something (a toxic, a proxy or a process)"


# ---------------------------------------------------------------- tests


def test_reference_gateway_passes_backend_reset(tmp_path: Path) -> None:
    result, stacks = run_loopback(tmp_path)
    assert (result.verdict, result.exit_code) == ("pass", 0), (result.error, failed(result))
    run_dir = Path(result.report_dir)
    for name in ("report.html", "result.json", "junit.xml"):
        assert (run_dir / name).is_file(), name
    fault = next(s for s in result.phase_stats if s.name == "fault")
    assert fault.counts.get("ok_after_retry", 0) > 0, fault.counts  # the reset toxic fired
    assert [f.phase for f in result.faults] == ["fault"] and result.faults[0].end is not None
    assert result.upstream, "the upstream counter probe ran against the local backend"
    assert result.provider.startswith("embedded")
    assert_torn_down(stacks)


def test_gateway_without_error_mapping_fails_on_resets(tmp_path: Path) -> None:
    result, stacks = run_loopback(tmp_path, "services.gateway.env.GATEWAY_ERROR_MAPPING=off")
    assert (result.verdict, result.exit_code) == ("fail", 1), result.error
    assert ("fault", "resets") in failed(result), failed(result)
    assert {kind for _, kind in failed(result)} == {"resets"}, failed(result)
    assert_torn_down(stacks)


def test_ctrl_c_in_a_phase_interrupts_and_tears_everything_down(tmp_path: Path) -> None:
    bus = EventBus()

    def ctrl_c(event: object) -> None:
        """Ctrl-C while the reset toxic is active (the EventBus passes it on: not an Exception)."""
        if isinstance(event, FaultInjected) and event.phase == "fault":
            raise KeyboardInterrupt

    bus.subscribe(ctrl_c)
    result, stacks = run_loopback(tmp_path, bus=bus)
    assert (result.verdict, result.exit_code) == ("interrupted", 130)
    assert [w.name for w in result.phases] == ["baseline", "fault"]
    assert result.faults and result.faults[0].end is not None and result.faults[0].error is None
    assert not result.assertions  # no judgement on partial data
    assert (Path(result.report_dir) / "result.json").is_file()
    assert_torn_down(stacks)


def test_faults_that_need_docker_are_refused_before_anything_starts(tmp_path: Path) -> None:
    path = REPO / "scenarios" / "backend-crash.yaml"
    stacks = Stacks(EventBus())
    with pytest.raises(ScenarioError, match="needs Docker") as raised:
        run_scenario(load_scenario(path), file=str(path), report_root=tmp_path, quiet=True,
                     stack_factory=stacks)
    assert str(path) in str(raised.value) and "phases[1].faults[0]" in str(raised.value)
    assert stacks.made and stacks.made[0].server is None and not stacks.made[0].local


def test_locust_killed_mid_run_is_a_harness_failure_not_a_verdict(tmp_path: Path) -> None:
    """SIGKILL to the load generator in the fault phase: exit 3 naming Locust and the signal,
    result.json's environment_error and the report's banner, and everything torn down."""
    import json
    import signal

    bus = EventBus()
    stacks = Stacks(bus)

    def kill_locust(event: object) -> None:
        if isinstance(event, FaultInjected) and stacks.locust_pid is not None:
            os.kill(stacks.locust_pid, signal.SIGKILL)

    bus.subscribe(kill_locust)
    started = time.monotonic()
    result = run_scenario(load_scenario(SCENARIO, SHORT), file=str(SCENARIO),
                          report_root=tmp_path / "reports", quiet=True, bus=bus,
                          stack_factory=stacks)
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
    assert_torn_down(stacks)


def test_a_bring_up_that_fails_half_way_takes_down_what_it_made(tmp_path: Path) -> None:
    """The gateway cannot start (a port that is not a number): exit 3 naming it, and the
    backend that did start, the embedded proxy server and the ledger are all gone."""
    import socket

    result, stacks = run_loopback(tmp_path, "services.gateway.env.PORT=not-a-port")
    assert (result.verdict, result.exit_code) == ("error", 3), result.error
    assert result.error is not None and "gateway did not become healthy" in result.error
    [stack] = stacks.made
    assert set(stack.local) == {"backend", "gateway"}
    assert all(gone(app.process.pid) for app in stack.local.values())
    assert stack.server is not None
    port = int(stack.server.url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the embedded server still listens"
    assert stack.ledger is not None and not stack.ledger.path.exists()
    assert "gateway" in result.logs
