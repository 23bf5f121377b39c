"""One run's life: images, network, Toxiproxy, services, probes, load, phases, teardown.

Everything created is labelled with the run id; teardown removes it by label,
so it also catches what was half-created when an error struck.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import docker

from chaos.errors import EnvironmentProblem
from chaos.faults.base import FaultContext, Injected
from chaos.faults.registry import inject
from chaos.load.runner import LocustProcess
from chaos.observe.events import (
    EventBus,
    FaultInjected,
    FaultRemoved,
    PhaseStarted,
    ServiceReady,
    Setup,
)
from chaos.observe.probes import BreakerPoller
from chaos.proxy import provider
from chaos.proxy.client import ToxiproxyClient
from chaos.runtime import bootstrap
from chaos.runtime.base_image import ensure_base
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.images import ensure_image, spec_for_build_dir, toxiproxy_spec
from chaos.runtime.paths import project_root
from chaos.scenario.model import Phase, Scenario
from chaos.verdict.result import FaultRecord, PhaseWindow

_REF = re.compile(r"\$\{(proxy|service)\.([a-z][a-z0-9_-]*)\}")
PROXY_SERVICE = "toxiproxy"


class RunSession:
    """Holds what a run created and observed; the engine drives run() then teardown()."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        self.scenario = scenario
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = bus
        self.env: RunEnvironment | None = None
        self.locust: LocustProcess | None = None
        self.poller: BreakerPoller | None = None
        self.proxies: ToxiproxyClient | None = None
        self.provider = ""
        self.images: dict[str, str] = {}
        self.windows: list[PhaseWindow] = []
        self.fault_records: list[FaultRecord] = []
        self.logs: dict[str, str] = {}
        self.breaker_samples: list[tuple[float, float]] = []
        self.t0 = time.time()
        self.records_path = run_dir / "requests.ndjson"
        self.listen_ports = provider.listen_ports(list(scenario.proxies))

    # -- bring-up ---------------------------------------------------------------------
    def run(self) -> None:
        client = bootstrap.ensure_engine()
        self._build_images(client)
        self.env = RunEnvironment(client, self.run_id, self.scenario.name)
        self.env.create_network()
        self._start_toxiproxy()
        self._start_services()
        self._start_probes()
        self._run_phases()

    def _build_images(self, client: docker.DockerClient) -> None:
        self.bus.emit(Setup(message="checking images (built only when their sources changed)"))
        base = ensure_base(client)
        choice = provider.choose(client)
        self.provider = choice.name
        self.images[PROXY_SERVICE] = choice.image or ensure_image(client, toxiproxy_spec(), base)
        for name, service in self.scenario.services.items():
            if service.image is not None:
                self.images[name] = service.image
                continue
            build_dir = (project_root() / service.build).resolve() if service.build else None
            if build_dir is None or not build_dir.is_dir():
                raise EnvironmentProblem(f"service {name}: build folder {service.build} not found")
            self.images[name] = ensure_image(client, spec_for_build_dir(build_dir), base)

    def _start_toxiproxy(self) -> None:
        assert self.env is not None
        self.env.start(PROXY_SERVICE, self.images[PROXY_SERVICE], provider.API_PORT, {},
                       memory="256m")
        url = self.env.services[PROXY_SERVICE].host_url
        self.proxies = ToxiproxyClient(url)
        started = time.monotonic()
        try:
            self.proxies.wait_ready(timeout=30)
        except Exception as exc:
            raise EnvironmentProblem(
                f"the Toxiproxy API did not answer: {exc}\n"
                + self.env.logs(self.env.container(PROXY_SERVICE))
            ) from exc
        self.bus.emit(ServiceReady(service=PROXY_SERVICE, image=self.images[PROXY_SERVICE],
                                   seconds=time.monotonic() - started))
        for name, spec in self.scenario.proxies.items():
            self.proxies.create_proxy(name, f"0.0.0.0:{self.listen_ports[name]}", spec.upstream)

    def _substitute(self, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "proxy":
                return f"http://{PROXY_SERVICE}:{self.listen_ports[name]}"
            return f"http://{name}:{self.scenario.services[name].port}"

        return _REF.sub(repl, value)

    def _start_services(self) -> None:
        assert self.env is not None
        for name, service in self.scenario.services.items():
            env = {k: self._substitute(v) for k, v in service.env_strings().items()}
            self.env.start(name, self.images[name], service.port, env, memory=service.memory,
                           cpus=service.cpus)
        for name, service in self.scenario.services.items():
            seconds = self.env.wait_healthy(name, service.health, timeout=60)
            self.bus.emit(ServiceReady(service=name, image=self.images[name], seconds=seconds))

    def _start_probes(self) -> None:
        assert self.env is not None
        probe = self.scenario.probes.breaker
        if probe is not None:
            self.poller = BreakerPoller(probe, self.env.services[probe.service].host_url)
            self.poller.start()

    # -- phases -----------------------------------------------------------------------
    def _run_phases(self) -> None:
        assert self.env is not None and self.proxies is not None
        target = self.env.services[self.scenario.load.target].direct_url(self.env.prefix)
        budget = self.scenario.total_duration() + 30
        self.locust = LocustProcess(self.scenario.load, target, self.run_dir, budget)
        self.locust.start()
        self.bus.emit(Setup(message=f"load: {self.scenario.load.users} users -> {target}"))
        if not self.locust.wait_for_traffic(timeout=30):
            raise EnvironmentProblem("Locust produced no requests:\n" + self.locust.log_tail())
        self.t0 = time.time()
        ctx = FaultContext(self.proxies, self.env)
        for phase in self.scenario.phases:
            self._run_phase(phase, ctx)

    def _run_phase(self, phase: Phase, ctx: FaultContext) -> None:
        assert self.locust is not None
        start = time.time()
        self.locust.set_phase(phase.name, start)
        window = PhaseWindow(phase.name, round(start - self.t0, 3), round(start - self.t0, 3))
        self.windows.append(window)
        self.bus.emit(PhaseStarted(phase=phase.name, duration=phase.duration))
        active: list[tuple[Injected, FaultRecord]] = []
        try:
            for index, fault in enumerate(phase.faults):
                injected = inject(fault, ctx, index)
                record = FaultRecord(phase.name, injected.description, round(time.time() - self.t0, 3))
                self.fault_records.append(record)
                window.faults.append(injected.description)
                active.append((injected, record))
                self.bus.emit(FaultInjected(phase=phase.name, description=injected.description))
            self._sleep_until(start + phase.duration, [i for i, _ in active if i.every])
        finally:
            window.end = round(time.time() - self.t0, 3)
            for injected, record in reversed(active):
                self._undo(injected, record, phase.name)

    def _undo(self, injected: Injected, record: FaultRecord, phase: str) -> None:
        record.end = round(time.time() - self.t0, 3)
        if injected.undo is None:
            return
        try:
            injected.undo()
            self.bus.emit(FaultRemoved(phase=phase, description=injected.description))
        except Exception as exc:  # noqa: BLE001 - teardown removes it anyway
            record.error = f"could not remove: {exc}"

    def _sleep_until(self, deadline: float, periodic: list[Injected]) -> None:
        assert self.locust is not None
        due = {id(item): time.time() + (item.every or 0) for item in periodic}
        while (left := deadline - time.time()) > 0:
            if not self.locust.running():
                raise EnvironmentProblem("Locust stopped early:\n" + self.locust.log_tail())
            for item in periodic:
                if item.again is not None and item.every and time.time() >= due[id(item)]:
                    item.again()
                    due[id(item)] += item.every
            time.sleep(min(0.05 if periodic else 0.2, left))

    # -- teardown ---------------------------------------------------------------------
    def teardown(self) -> None:
        if self.locust is not None:
            self.locust.stop()
        if self.poller is not None:
            self.poller.stop()
            self.breaker_samples = list(self.poller.samples)
        if self.env is not None:
            self.logs = self.env.collect_logs(self.run_dir / "logs")
            problems = self.env.teardown()
            if problems:
                self.bus.emit(Setup(message="teardown problems: " + "; ".join(problems)))
            self.bus.emit(Setup(message=f"removed everything labelled run={self.run_id}"))
