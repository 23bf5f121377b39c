"""The phase loop: load, faults and probes over a Stack (chaos.stack), whichever it is.

The stack brought the environment up and takes it down; the session starts the load
generator and the probes against it, runs the phases (each fault switched on at its
`at`, off after its `for` or with its phase) and keeps what it observed for the verdict.
"""

from __future__ import annotations

import time
from pathlib import Path

from chaos.capture.sidecar import Captured
from chaos.errors import EnvironmentProblem, Interrupted
from chaos.faults.base import FaultContext, Injected
from chaos.faults.switch import Active, FaultSwitch
from chaos.llm.providers import start_providers
from chaos.load.runner import LocustProcess
from chaos.observe.events import EventBus, LoadStarted, PhaseStarted, ProbeSample
from chaos.observe.probes import BreakerPoller, MetricPoller, counter_poller
from chaos.observe.watchdog import process_check
from chaos.scenario.model import ContainerFault, Fault, NetFault, Phase, Scenario
from chaos.stack.base import BaseStack, Stack
from chaos.verdict.result import FaultRecord, PhaseWindow
from chaos.witness.poll import WitnessPoller
from chaos.witness.sources import start_witness


class RunSession:
    """One run's phases over a stack; the engine calls run() inside the stack, then teardown()."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus,
                 stack: Stack | None = None) -> None:
        self.scenario, self.run_id, self.run_dir, self.bus = scenario, run_id, run_dir, bus
        self.stack: Stack = stack or BaseStack(scenario, run_id, run_dir, bus)
        self.watchdog = self.stack.watchdog
        self.watchdog.origin = lambda: self.t0  # offsets count from the first phase
        self.switch = FaultSwitch(bus, self._since, lambda: self.stack.ledger, self.stack.moved,
                                  self.stack.proxy_dead)
        self.locust: LocustProcess | None = None
        self.poller: BreakerPoller | None = None
        self.upstream_poller: MetricPoller | None = None
        self.windows: list[PhaseWindow] = []
        self.breaker_samples: list[tuple[float, float]] = []
        self.upstream_samples: list[tuple[float, float]] = []
        self.t0 = time.time()
        self.records_path = run_dir / "requests.ndjson"
        self.witness: dict[str, object] = {}  # result.witness, once torn down (chaos.witness)
        self.witness_poller: WitnessPoller | None = None
        self.provider_poller: WitnessPoller | None = None  # providers.ndjson (chaos.llm)
        self.faulted: set[str] = set()  # services a container or network fault has hit
        self._witness_kind = ("none", "")  # the plan's kind and note, for the summary

    @property
    def fault_records(self) -> list[FaultRecord]:
        return self.switch.records

    # what the engine reads about the environment comes from the stack
    @property
    def provider(self) -> str:
        return self.stack.provider

    @property
    def images(self) -> dict[str, str]:
        return self.stack.images

    @property
    def logs(self) -> dict[str, str]:
        return self.stack.logs

    @property
    def capture_names(self) -> dict[str, str]:
        return self.stack.capture_names

    @property
    def captured(self) -> Captured | None:
        return self.stack.captured

    def run(self) -> None:
        self._start_witness()
        self._start_providers()
        self._start_probes()  # before the phases: probes sample while they run
        self._run_phases()

    def _start_witness(self) -> None:
        """The upstream witness: the proxy's tap or the backend's journal, drained each second."""
        plan, self.witness_poller = start_witness(self.scenario, self.stack, self.run_dir,
                                                  self.faulted.__contains__)
        self.witness = {"kind": plan.kind, "sources": [], "attempts": 0, "dropped": 0,
                        "connections": {"http": 0, "tls": 0, "unknown": 0}, "note": plan.note}
        self._witness_kind = (plan.kind, plan.note)
        if self.witness_poller is not None:
            self.watchdog.watch("witness", self.witness_poller.check)

    def _start_providers(self) -> None:
        """The LLM providers' journals (chaos.llm.providers), whatever the witness is."""
        self.provider_poller = start_providers(self.scenario, self.stack, self.run_dir,
                                               self.faulted.__contains__)
        if self.provider_poller is not None:
            self.watchdog.watch("providers", self.provider_poller.check)

    def _start_probes(self) -> None:
        probe = self.scenario.probes.breaker
        if probe is not None:
            self.poller = BreakerPoller(probe, self.stack.service_url(probe.service))
            self.poller.start()
        counter = self.scenario.probes.upstream_requests
        if counter is not None:
            self.upstream_poller = counter_poller(counter, self.stack.service_url(counter.service))
            self.upstream_poller.start()

    def _run_phases(self) -> None:
        ctx = self.stack.fault_context()
        target = self.stack.load_target()
        budget = self.scenario.total_duration() + 30
        self.locust = LocustProcess(self.scenario.load, target, self.run_dir, budget,
                                    ledger=self.stack.ledger, tls=self.stack.load_tls())
        pid = self.locust.start()
        assert self.locust.proc is not None
        self.watchdog.watch("locust", process_check(
            f"the Locust load generator (pid {pid})", self.locust.proc, self.locust.log_tail))
        self.bus.emit(LoadStarted(users=self.scenario.load.users, target=target))
        if not self.locust.wait_for_traffic(timeout=30):
            raise EnvironmentProblem("Locust produced no requests:\n" + self.locust.log_tail())
        self.t0 = time.time()
        try:
            for phase in self.scenario.phases:
                self._run_phase(phase, ctx)
        except Interrupted:
            raise
        except Exception:
            # a fault that failed because a harness part is gone: name the part, not the fault
            self.watchdog.check(force=True)
            raise

    def _run_phase(self, phase: Phase, ctx: FaultContext) -> None:
        assert self.locust is not None
        start = time.time()
        self.locust.set_phase(phase.name, start)
        window = PhaseWindow(phase.name, self._since(start), self._since(start))
        self.windows.append(window)
        self.bus.emit(PhaseStarted(phase=phase.name, duration=phase.duration))
        end = start + phase.duration
        # faults in the order they start (`at`); each is removed `for` after its start, or
        # with its phase (off >= end)
        waiting = sorted(enumerate(phase.faults), key=lambda item: item[1].at or 0.0)
        active: list[Active] = []
        try:
            while True:
                self._switch_due(phase, ctx, window, start, waiting, active)
                due = [start + (f.at or 0.0) for _, f in waiting]
                due += [a.off for a in active if a.off < end]
                if not due and time.time() >= end:
                    break
                self._sleep_until(min(due, default=end),
                                  [a.injected for a in active if a.injected.every])
        finally:
            window.end = self._since(time.time())
            for item in reversed(active):
                self.switch.remove(item, phase.name)

    def _switch_due(self, phase: Phase, ctx: FaultContext, window: PhaseWindow, start: float,
                    waiting: list[tuple[int, Fault]], active: list[Active]) -> None:
        """Remove the faults whose `for` is over, then apply those whose `at` has come."""
        end = start + phase.duration
        for item in [a for a in active if a.off < end and a.off <= time.time()]:
            self.switch.remove(item, phase.name)
            active.remove(item)  # after: a Ctrl-C inside the removal leaves it to the finally
        while waiting and start + (waiting[0][1].at or 0.0) <= time.time():
            index, fault = waiting.pop(0)
            if isinstance(fault, ContainerFault | NetFault):  # its journal may fall silent
                self.faulted.add(fault.container if isinstance(fault, ContainerFault)
                                 else fault.service)
            on = start + (fault.at or 0.0)
            off = on + fault.for_ if fault.for_ is not None else end
            self.switch.apply(fault, index, phase.name, ctx, window, off, active)

    def _since(self, moment: float) -> float:
        return round(moment - self.t0, 3)

    def _sleep_until(self, deadline: float, periodic: list[Injected]) -> None:
        due = {id(item): time.time() + (item.every or 0) for item in periodic}
        while (left := deadline - time.time()) > 0:
            self.watchdog.check()  # Locust, the proxy server, the sidecars
            for item in periodic:
                if item.again is not None and item.every and time.time() >= due[id(item)]:
                    item.again()
                    due[id(item)] += item.every
            time.sleep(min(0.05 if periodic else 0.2, left))

    def teardown(self) -> None:
        """The load and the probes stop; the stack's own close removes the environment."""
        if self.locust is not None:
            self.locust.stop()
        if self.witness_poller is not None:  # the last drain, while the sources still answer
            self.watchdog.unwatch("witness")
            self.witness_poller.stop()
            self.witness = self.witness_poller.summary(*self._witness_kind)
        if self.provider_poller is not None:  # the providers' last drain
            self.watchdog.unwatch("providers")
            self.provider_poller.stop()
        if self.poller is not None:
            self.poller.stop()
            self.breaker_samples = list(self.poller.samples)
        if self.upstream_poller is not None:
            self.upstream_poller.stop()
            self.upstream_samples = list(self.upstream_poller.samples)
        for probe, samples in (("breaker", self.breaker_samples),
                               ("upstream_requests", self.upstream_samples)):
            for t, value in samples:  # read by the pollers' threads: emitted here, in order
                self.bus.emit(ProbeSample(probe=probe, value=value, t=t))
