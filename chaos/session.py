"""One run's life: images, network, Toxiproxy, services, probes, load, phases, teardown.

Everything created is labelled with the run id; teardown removes it by label,
so it also catches what was half-created when an error struck.

Toxiproxy is either the run's own ``toxiproxy`` container on the run's network,
or (TOXIPROXY_URL) a server the user runs on the Docker host: then no container
is started, the run's proxies are created there under run-unique names, listen
on the host's address on the run's bridge network and point at the services'
container addresses, which are set as each service starts (and again after a
container fault, since a restarted container may get a new address).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import docker

from chaos.capture.sidecar import Captured, CaptureSet, start_capture
from chaos.errors import EnvironmentProblem, Interrupted, ScenarioError
from chaos.faults import netns
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
from chaos.observe.probes import BreakerPoller, MetricPoller, counter_poller
from chaos.observe.watchdog import Watchdog, container_check, process_check, url_check
from chaos.proxy import provider
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.external import ExternalProxies
from chaos.proxy.external import conflicts as external_conflicts
from chaos.runtime import bootstrap
from chaos.runtime.base_image import ensure_base
from chaos.runtime.control import check_address, create_control_network, image_writable
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.health import ready_timeout
from chaos.runtime.images import (
    ensure_image,
    image_for_build,
    spec_for_build_dir,
    toxiproxy_spec,
)
from chaos.runtime.ledger import (
    Entry,
    Ledger,
    docker_removers,
    process_remover,
    proxy_remover,
)
from chaos.runtime.paths import project_root
from chaos.scenario.loader import REFERENCE
from chaos.scenario.model import ContainerFault, Fault, NetFault, Phase, Scenario, ToxicFault
from chaos.verdict.result import FaultRecord, PhaseWindow

PROXY_SERVICE = "toxiproxy"
NETFAULT_IMAGE = "netfault"
CAPTURE_IMAGE = "capture"


def netfault_sidecar(labels: dict[str, str]) -> str | None:
    """A network fault's sidecar (it lives while its fault is on), by its labels."""
    if netns.LABEL_CHAIN not in labels:
        return None
    return f"the network-fault sidecar on {labels.get(netns.LABEL_TARGET, '?')}"


class RunSession:
    """Holds what a run created and observed; the engine drives run() then teardown()."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        self.scenario = scenario
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = bus
        self.env: RunEnvironment | None = None
        self.ledger: Ledger | None = None  # what was created, written before creating it
        self._fault_keys: dict[int, str] = {}
        self.locust: LocustProcess | None = None
        self.poller: BreakerPoller | None = None
        self.proxies: ToxiproxyClient | None = None
        self.provider = ""
        self.choice: provider.ProviderChoice | None = None
        self.proxy_host = PROXY_SERVICE  # where the services reach the proxies
        self.external_proxies: ExternalProxies | None = None  # on a user's server
        self.images: dict[str, str] = {}
        self.tool_images: dict[str, str] = {}  # helper images faults need (not services)
        self.windows: list[PhaseWindow] = []
        self.fault_records: list[FaultRecord] = []
        self.logs: dict[str, str] = {}
        self.breaker_samples: list[tuple[float, float]] = []
        self.upstream_poller: MetricPoller | None = None
        self.upstream_samples: list[tuple[float, float]] = []
        self.t0 = time.time()
        self.records_path = run_dir / "requests.ndjson"
        self.listen_ports = provider.listen_ports(list(scenario.proxies))
        self.capture: CaptureSet | None = None  # evidence sidecars (scenario capture: true)
        self.captured: Captured | None = None
        self.capture_names: dict[str, str] = {}  # run network IP -> service name
        self.ready_timeout = ready_timeout()  # CHAOS_READY_TIMEOUT: a bad value is refused here
        self.watchdog = Watchdog(lambda: self.t0)  # the harness's own parts (issue 15 item 4)
        self.harness_containers: dict[str, str] = {}  # container name -> part, must stay up

    # -- bring-up ---------------------------------------------------------------------
    def run(self) -> None:
        self.ledger = Ledger(self.run_id, self.scenario.name)
        client = bootstrap.ensure_engine()
        self._choose_provider(client)
        # before the builds: images built for this run alone carry its labels and go with it
        self.env = RunEnvironment(client, self.run_id, self.scenario.name, ledger=self.ledger)
        self._build_images(client)
        self.env.tool_images.update(self.tool_images)
        self.env.create_network()
        if self.external:
            self._create_external_proxies()
        else:
            self._start_toxiproxy()
        self._start_services()
        if self.external:
            assert self.external_proxies is not None
            self.external_proxies.check_reach()
        self._start_probes()
        self._start_capture()
        self.watchdog.watch("containers", container_check(
            self.env.client, self.run_id, lambda: dict(self.harness_containers),
            netfault_sidecar))
        self._run_phases()

    @property
    def proxy_part(self) -> str:
        return f"the Toxiproxy server ({self.provider})"

    def _proxy_dead(self) -> bool:
        """The watchdog saw the proxy server die: its API is not asked again (each call
        to a vanished address costs seconds), its toxics and proxies went with it."""
        return self.watchdog.failure is not None and self.watchdog.failure.part == self.proxy_part

    @property
    def external(self) -> bool:
        """The proxies live on a server the user runs (TOXIPROXY_URL), not in a container."""
        return self.choice is not None and self.choice.kind == "url"

    def _choose_provider(self, client: docker.DockerClient) -> None:
        """Before anything is built or started: a scenario a user's server cannot serve fails here."""
        self.choice = provider.choose(client, external_supported=True)
        self.provider = self.choice.name
        if not self.external:
            return
        conflicts = external_conflicts(self.scenario)
        if conflicts:
            key, why = conflicts[0]
            raise ScenarioError(f"{why}; unset TOXIPROXY_URL to run this scenario with the "
                                "run's own Toxiproxy container", file=f"scenario {self.scenario.name}",
                                key=key)
        self.bus.emit(Setup(message=f"Toxiproxy: {self.provider}; the run starts no proxy "
                                    "container"))

    def _build_images(self, client: docker.DockerClient) -> None:
        self.bus.emit(Setup(message="checking images (built only when their sources changed)"))
        base = ensure_base(client)
        assert self.choice is not None  # _choose_provider ran first
        if self.choice.starts_container:
            self.images[PROXY_SERVICE] = self.choice.image or ensure_image(
                client, toxiproxy_spec(), base)
        for name, service in self.scenario.services.items():
            if service.image is not None:
                self.images[name] = service.image
                continue
            build_dir = (project_root() / service.build).resolve() if service.build else None
            if build_dir is None or not build_dir.is_dir():
                raise EnvironmentProblem(f"service {name}: build folder {service.build} not found")
            assert self.env is not None  # created first: per-run images carry its labels
            self.images[name] = image_for_build(client, build_dir, base, self.env.labels,
                                                self.ledger)
        if any(isinstance(f, NetFault) for p in self.scenario.phases for f in p.faults):
            # the sidecar that applies network faults in a service's namespace
            netfault = spec_for_build_dir(project_root() / "docker" / NETFAULT_IMAGE)
            self.tool_images[NETFAULT_IMAGE] = ensure_image(client, netfault, base)
        if self.scenario.capture_spec() is not None:
            capture = spec_for_build_dir(project_root() / "docker" / CAPTURE_IMAGE)
            self.tool_images[CAPTURE_IMAGE] = ensure_image(client, capture, base)

    def _start_toxiproxy(self) -> None:
        """Its API on the run's control network only; its listeners on the run network."""
        assert self.env is not None and self.choice is not None
        network, api_host = create_control_network(self.env.client, self.env.prefix,
                                                   self.env.labels, self.ledger)
        command, env = provider.api_binding(self.choice, api_host)
        self.env.start(PROXY_SERVICE, self.images[PROXY_SERVICE], provider.API_PORT, env,
                       memory="256m", command=command, control=network,
                       writable=provider.WRITABLE, publish=False)
        check_address(self.env.container(PROXY_SERVICE), network.name, api_host)
        url = f"http://{api_host}:{provider.API_PORT}"  # the host reaches it over the bridge
        self.proxies = ToxiproxyClient(url)
        started = time.monotonic()
        try:
            self.proxies.wait_ready(timeout=30)
        except Exception as exc:
            raise EnvironmentProblem(
                f"the Toxiproxy API did not answer at {url} (its address on the run's control "
                f"network: the host must reach Docker's bridge networks): {exc}\n"
                + self.env.logs(self.env.container(PROXY_SERVICE))
            ) from exc
        self.bus.emit(ServiceReady(service=PROXY_SERVICE, image=self.images[PROXY_SERVICE],
                                   seconds=time.monotonic() - started))
        name = self.env.container(PROXY_SERVICE).name or PROXY_SERVICE
        self.harness_containers[name] = self.proxy_part
        for name, spec in self.scenario.proxies.items():
            if self.ledger is not None:
                self.ledger.intend("proxy", name, api=url)
            self.proxies.create_proxy(name, f"0.0.0.0:{self.listen_ports[name]}", spec.upstream)

    def _create_external_proxies(self) -> None:
        """The run's proxies on the user's server, under run-unique names, before any service."""
        assert self.env is not None and self.choice is not None and self.choice.url
        self.external_proxies = ExternalProxies(
            self.choice.url, self.run_id, self.scenario, self.env, self.ledger,
            lambda message: self.bus.emit(Setup(message=message)))
        self.proxies = self.external_proxies.client
        self.proxy_host = self.external_proxies.host
        self.external_proxies.create()
        self.listen_ports.update(self.external_proxies.ports)
        self.watchdog.watch("toxiproxy", url_check(self.proxy_part, self.choice.url))

    def _point_proxies(self, services: set[str] | None = None) -> None:
        """On a user's server: upstreams follow the containers' current addresses."""
        if self.external_proxies is not None:
            self.external_proxies.point(services)

    def _substitute(self, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "proxy":
                return f"http://{self.proxy_host}:{self.listen_ports[name]}"
            return f"http://{name}:{self.scenario.services[name].port}"

        return REFERENCE.sub(repl, value)

    def _start_services(self) -> None:
        """In dependency order: a service starts once everything in its depends_on is healthy."""
        assert self.env is not None
        ready: set[str] = set()
        order = self.scenario.start_order()
        for name in order:
            service = self.scenario.services[name]
            for dep in service.depends_on:
                self._wait_ready(dep, ready)
            env = {k: self._substitute(v) for k, v in service.env_strings().items()}
            self.env.start(name, self.images[name], service.port, env, memory=service.memory,
                           cpus=service.cpus,
                           writable=image_writable(self.env.client, self.images[name]))
            self._point_proxies({name})
        for name in order:
            self._wait_ready(name, ready)

    def _wait_ready(self, name: str, ready: set[str]) -> None:
        assert self.env is not None
        if name in ready:
            return
        service = self.scenario.services[name]
        seconds = self.env.wait_healthy(name, service.health, timeout=self.ready_timeout)
        ready.add(name)
        self.bus.emit(ServiceReady(service=name, image=self.images[name], seconds=seconds))

    def _start_probes(self) -> None:
        probe = self.scenario.probes.breaker
        if probe is not None:
            self.poller = BreakerPoller(probe, self._service_url(probe.service))
            self.poller.start()
        counter = self.scenario.probes.upstream_requests
        if counter is not None:
            self.upstream_poller = counter_poller(counter, self._service_url(counter.service))
            self.upstream_poller.start()

    def _service_url(self, name: str) -> str:
        """Where the harness reaches a service (its probes); a subclass may run it elsewhere."""
        assert self.env is not None
        return self.env.services[name].host_url

    def _start_capture(self) -> None:
        """tcpdump + ss sidecars before the load starts, so the first SYNs are in the pcaps."""
        spec = self.scenario.capture_spec()
        if spec is None or self.env is None:
            return
        services = spec.services or list(self.scenario.services)
        self.bus.emit(Setup(message=f"capturing packets and socket states on {', '.join(services)}"))
        self.capture, self.capture_names = start_capture(
            self.env, self.tool_images[CAPTURE_IMAGE], services, spec.max_mb, spec.max_seconds,
            spec.ss_interval)
        for service, sidecar in self.capture.sidecars.items():
            self.harness_containers[sidecar.name or service] = f"the capture sidecar on {service}"

    # -- phases -----------------------------------------------------------------------
    def _load_target(self) -> str:
        """Where Locust sends the load; a subclass may run the target elsewhere."""
        assert self.env is not None
        return self.env.services[self.scenario.load.target].direct_url(self.env.prefix)

    def _fault_context(self) -> FaultContext:
        assert self.env is not None and self.proxies is not None
        return FaultContext(self.proxies, self.env)

    def _run_phases(self) -> None:
        ctx = self._fault_context()
        target = self._load_target()
        budget = self.scenario.total_duration() + 30
        self.locust = LocustProcess(self.scenario.load, target, self.run_dir, budget,
                                    ledger=self.ledger)
        pid = self.locust.start()
        assert self.locust.proc is not None
        self.watchdog.watch("locust", process_check(
            f"the Locust load generator (pid {pid})", self.locust.proc, self.locust.log_tail))
        self.bus.emit(Setup(message=f"load: {self.scenario.load.users} users -> {target}"))
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
        window = PhaseWindow(phase.name, round(start - self.t0, 3), round(start - self.t0, 3))
        self.windows.append(window)
        self.bus.emit(PhaseStarted(phase=phase.name, duration=phase.duration))
        end = start + phase.duration
        # faults in the order they start (`at`); each is removed `for` after its start, or
        # with its phase (off >= end)
        waiting = sorted(enumerate(phase.faults), key=lambda item: item[1].at or 0.0)
        active: list[tuple[Fault, Injected, FaultRecord, float]] = []
        try:
            while True:
                self._switch_due(phase, ctx, window, start, waiting, active)
                due = [start + (f.at or 0.0) for _, f in waiting]
                due += [off for *_, off in active if off < end]
                if not due and time.time() >= end:
                    break
                self._sleep_until(min(due, default=end), [i for _, i, _, _ in active if i.every])
        finally:
            window.end = round(time.time() - self.t0, 3)
            for fault, injected, record, _ in reversed(active):
                self._remove(fault, injected, record, phase.name)

    def _switch_due(self, phase: Phase, ctx: FaultContext, window: PhaseWindow, start: float,
                    waiting: list[tuple[int, Fault]],
                    active: list[tuple[Fault, Injected, FaultRecord, float]]) -> None:
        """Remove the faults whose `for` is over, then apply those whose `at` has come."""
        end = start + phase.duration
        for item in [a for a in active if a[3] < end and a[3] <= time.time()]:
            self._remove(item[0], item[1], item[2], phase.name)
            active.remove(item)  # after: a Ctrl-C inside the removal leaves it to the finally
        while waiting and start + (waiting[0][1].at or 0.0) <= time.time():
            index, fault = waiting.pop(0)
            on = start + (fault.at or 0.0)
            off = on + fault.for_ if fault.for_ is not None else end
            self._apply(fault, index, phase, ctx, window, off, active)

    def _apply(self, fault: Fault, index: int, phase: Phase, ctx: FaultContext,
               window: PhaseWindow, off: float,
               active: list[tuple[Fault, Injected, FaultRecord, float]]) -> None:
        """Inject; the fault is active (to be removed) before anyone hears of it."""
        key = self._record_fault(fault, index)
        requested = time.time()  # the fault's window starts here, not when Docker returns
        injected = inject(fault, ctx, index)
        completed = time.time()
        if isinstance(fault, ContainerFault):
            self._point_proxies({fault.container})  # a started container: new address?
        if key is not None:
            self._fault_keys[id(injected)] = key
        restore = isinstance(fault, ContainerFault) and fault.restores
        record = FaultRecord(phase.name, injected.description, self._since(requested),
                             completed=self._since(completed),
                             kind="restore" if restore else "fault")
        self.fault_records.append(record)
        window.faults.append(injected.description)
        active.append((fault, injected, record, off))  # a listener's Ctrl-C: still removed
        self.bus.emit(FaultInjected(phase=phase.name, description=injected.description,
                                    requested=requested, completed=completed, restore=restore))

    def _remove(self, fault: Fault, injected: Injected, record: FaultRecord, phase: str) -> None:
        """A restore (start, unpause) is an instant: nothing to remove, no window to end."""
        if record.kind == "restore":
            return
        self._undo(injected, record, phase)
        if isinstance(fault, ContainerFault) and injected.undo is not None:
            self._point_proxies({fault.container})  # started again: maybe a new address

    def _since(self, moment: float) -> float:
        return round(moment - self.t0, 3)

    def _undo(self, injected: Injected, record: FaultRecord, phase: str) -> None:
        requested = time.time()
        record.end = self._since(requested)
        if injected.undo is None:
            return
        if self._proxy_dead() and id(injected) in self._fault_keys:  # a toxic on a dead server
            record.error = "not removed: the Toxiproxy server had died"
            return
        try:
            injected.undo()
            completed = time.time()
            record.removed = self._since(completed)
            key = self._fault_keys.pop(id(injected), None)
            if key is not None and self.ledger is not None:
                self.ledger.removed("toxic", key)
            self.bus.emit(FaultRemoved(phase=phase, description=injected.description,
                                       requested=requested, completed=completed))
        except Exception as exc:  # noqa: BLE001 - teardown removes it anyway
            record.error = f"could not remove: {exc}"

    def _record_fault(self, fault: object, index: int) -> str | None:
        """Toxics live inside the proxy server: the ledger names them before they exist."""
        if not isinstance(fault, ToxicFault) or self.ledger is None:
            return None
        name = fault.toxic.name or f"{fault.toxic.type}_{fault.toxic.stream}_{index}"
        key = f"{fault.proxy}/{name}"
        self.ledger.intend("toxic", key, proxy=fault.proxy, toxic=name)
        return key

    def _sleep_until(self, deadline: float, periodic: list[Injected]) -> None:
        assert self.locust is not None
        due = {id(item): time.time() + (item.every or 0) for item in periodic}
        while (left := deadline - time.time()) > 0:
            self.watchdog.check()  # Locust, the proxy server, the sidecars
            for item in periodic:
                if item.again is not None and item.every and time.time() >= due[id(item)]:
                    item.again()
                    due[id(item)] += item.every
            time.sleep(min(0.05 if periodic else 0.2, left))

    # -- teardown ---------------------------------------------------------------------
    def teardown(self) -> None:
        self.bus.emit(Setup(message=f"tearing down run={self.run_id}"))
        if self.locust is not None:
            self.locust.stop()
        if self.poller is not None:
            self.poller.stop()
            self.breaker_samples = list(self.poller.samples)
        if self.upstream_poller is not None:
            self.upstream_poller.stop()
            self.upstream_samples = list(self.upstream_poller.samples)
        if self.capture is not None:  # stopped and copied out before the environment sweep
            self.captured = self.capture.stop(self.run_dir)
            self.capture = None
        if self.env is not None:
            self.logs = self.env.collect_logs(self.run_dir / "logs")
            problems = self._unwind_ledger()
            problems += self.env.teardown()
            if problems:
                self.bus.emit(Setup(message="teardown problems: " + "; ".join(problems)))
            self.bus.emit(Setup(message=f"removed everything labelled run={self.run_id}"))
        if self.ledger is not None:
            if self.env is None:
                self._unwind_ledger()  # nothing in Docker yet, maybe a Locust process
            if not self.ledger.close():
                left = ", ".join(str(e) for e in self.ledger.outstanding())
                self.bus.emit(Setup(message=f"left for `chaos doctor --sweep`: {left}"))
        if self.proxies is not None:
            self.proxies.close()

    def _unwind_ledger(self) -> list[str]:
        """Walk the ledger newest first; the label sweep after it is the safety net."""
        if self.ledger is None:
            return []
        proxies = None if self._proxy_dead() else self.proxies

        def toxic(entry: Entry) -> None:
            if proxies is not None:
                with contextlib.suppress(Exception):  # gone with the proxy container anyway
                    proxies.remove_toxic(str(entry.info.get("proxy")), str(entry.info.get("toxic")))

        external = proxy_remover(self.run_id)["proxy"]

        def proxy(entry: Entry) -> None:
            if entry.info.get("external"):
                external(entry)  # on the user's server: must go, or doctor has to do it
            elif proxies is not None:
                with contextlib.suppress(Exception):  # gone with the proxy container anyway
                    proxies.delete_proxy(entry.name)

        removers = {"toxic": toxic, "proxy": proxy, **process_remover(self.run_id)}
        if self.env is not None:
            removers.update(docker_removers(self.env.client, self.run_id))
        return self.ledger.unwind(removers)
