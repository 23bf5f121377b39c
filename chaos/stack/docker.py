"""The Docker stack: images, network, Toxiproxy, services, capture, watchdog.

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

from chaos.capture.sidecar import CaptureSet, start_capture
from chaos.errors import EnvironmentProblem, ScenarioError, ServiceNotReady
from chaos.faults import netns
from chaos.faults.base import FaultContext
from chaos.observe.events import (
    CaptureStarted,
    EventBus,
    ImageBuilt,
    ImagesChecking,
    LabelledRemoved,
    ProxyCreated,
    ProxyServerChosen,
    ServiceReady,
    TeardownProblems,
)
from chaos.observe.watchdog import container_check, url_check
from chaos.proxy import provider
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.external import ExternalProxies
from chaos.proxy.external import conflicts as external_conflicts
from chaos.runtime import bootstrap
from chaos.runtime.base_image import ensure_base
from chaos.runtime.control import check_address, create_control_network, image_writable
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.health import ready_timeout
from chaos.runtime.images import ensure_image, image_for_build, spec_for_build_dir, toxiproxy_spec
from chaos.runtime.ledger import Remover, docker_removers
from chaos.runtime.paths import project_root
from chaos.scenario.build_roots import resolve_build
from chaos.scenario.gateways import find
from chaos.scenario.llm_provider import SCRIPT_ENV, script_env
from chaos.scenario.loader import REFERENCE
from chaos.scenario.model import NetFault, Scenario
from chaos.scenario.tls_checks import uses_tls
from chaos.stack.base import BaseStack
from chaos.stack.gateway_version import read_version
from chaos.tls.run import RunTls
from chaos.witness.plan import refuse_tap

PROXY_SERVICE = "toxiproxy"
NETFAULT_IMAGE = "netfault"
CAPTURE_IMAGE = "capture"


def netfault_sidecar(labels: dict[str, str]) -> str | None:
    """A network fault's sidecar (it lives while its fault is on), by its labels."""
    if netns.LABEL_CHAIN not in labels:
        return None
    return f"the network-fault sidecar on {labels.get(netns.LABEL_TARGET, '?')}"


class DockerStack(BaseStack):
    """Containers the run builds and starts on its own network."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        super().__init__(scenario, run_id, run_dir, bus)
        self.env: RunEnvironment | None = None
        self.choice: provider.ProviderChoice | None = None
        self.proxy_host = PROXY_SERVICE  # where the services reach the proxies
        self.external_proxies: ExternalProxies | None = None  # on a user's server
        self.tool_images: dict[str, str] = {}  # helper images faults need (not services)
        self.listen_ports = provider.listen_ports(list(scenario.proxies))
        self.capture: CaptureSet | None = None  # evidence sidecars (scenario capture: true)
        self.ready_timeout = ready_timeout()  # CHAOS_READY_TIMEOUT: a bad value is refused here
        self.harness_containers: dict[str, str] = {}  # container name -> part, must stay up

    # -- bring-up ---------------------------------------------------------------------
    def open(self) -> None:
        self.open_ledger()
        client = bootstrap.ensure_engine()
        self._choose_provider(client)
        # before the builds: images built for this run alone carry its labels and go with it
        self.env = RunEnvironment(client, self.run_id, self.scenario.name, ledger=self.ledger)
        self.resources.callback(self._remove_environment)
        self._build_images(client)
        self.env.tool_images.update(self.tool_images)
        self.env.create_network()
        if self.external:
            self._create_external_proxies()
        else:
            self._start_toxiproxy()
        self._start_services()
        if self.external_proxies is not None:
            self.external_proxies.check_reach()
        self._start_capture()
        self.watchdog.watch("containers", container_check(
            self.env.client, self.run_id, lambda: dict(self.harness_containers),
            netfault_sidecar))

    @property
    def external(self) -> bool:
        """The proxies live on a server the user runs (TOXIPROXY_URL), not in a container."""
        return self.choice is not None and self.choice.kind == "url"

    def _choose_provider(self, client: docker.DockerClient) -> None:
        """Before anything is built or started: a scenario a user's server cannot serve fails here."""
        self.choice = provider.choose(client, external_supported=True)
        self.provider = self.choice.name
        self.has_tap = {"embedded": True, "url": None}.get(self.choice.kind, False)
        refuse_tap(self.scenario, self.has_tap, self.provider)  # use: tap on a real server
        provider.refuse_http_toxics(self.scenario, self.choice)  # http_abort & co: embedded only
        if not self.external:
            return
        conflicts = external_conflicts(self.scenario)
        if conflicts:
            key, why = conflicts[0]
            raise ScenarioError(f"{why}; unset TOXIPROXY_URL to run this scenario with the "
                                "run's own Toxiproxy container", file=f"scenario {self.scenario.name}",
                                key=key)
        self.bus.emit(ProxyServerChosen(server=self.provider,
                                        note="the run starts no proxy container"))

    def _build_images(self, client: docker.DockerClient) -> None:
        self.bus.emit(ImagesChecking())
        base = ensure_base(client)
        assert self.choice is not None and self.env is not None  # chosen and created first
        if self.choice.starts_container:
            self.images[PROXY_SERVICE] = self.choice.image or ensure_image(
                client, toxiproxy_spec(), base)
        for name, service in self.scenario.services.items():
            if service.image is not None:
                self.images[name] = service.image
                continue
            # the folder the loader checked against the allowed build roots, resolved alike
            build_dir = resolve_build(service.build) if service.build else None
            if build_dir is None or not build_dir.is_dir():
                raise EnvironmentProblem(f"service {name}: build folder {service.build} not found")
            self.images[name] = image_for_build(client, build_dir, base, self.env.labels,
                                                self.ledger)
            self.bus.emit(ImageBuilt(service=name, image=self.images[name]))
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
            info = self.proxies.create_proxy(name, f"0.0.0.0:{self.listen_ports[name]}",
                                             spec.upstream)
            self.bus.emit(ProxyCreated(name=name, listen=info.listen, upstream=spec.upstream,
                                       shown=False))

    def _create_external_proxies(self) -> None:
        """The run's proxies on the user's server, under run-unique names, before any service."""
        assert self.env is not None and self.choice is not None and self.choice.url
        self.external_proxies = ExternalProxies(
            self.choice.url, self.run_id, self.scenario, self.env, self.ledger,
            self.bus.emit)
        self.proxies = self.external_proxies.client
        self.proxy_host = self.external_proxies.host
        self.external_proxies.create()
        self.listen_ports.update(self.external_proxies.ports)
        self.watchdog.watch("toxiproxy", url_check(self.proxy_part, self.choice.url))

    def moved(self, services: set[str]) -> None:
        """On a user's server: upstreams follow the containers' current addresses; a
        started container publishes its port anew (Docker picks another host port)."""
        if self.external_proxies is not None:
            self.external_proxies.point(services)
        env = self.env
        for name in sorted(services & set(env.services if env is not None else ())):
            assert env is not None
            service = env.services[name]
            if service.host_port:
                with contextlib.suppress(ServiceNotReady):  # stopped: it has no port now
                    service.host_port = env.host_port(name, service.port)

    def _substitute(self, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "proxy":  # the proxy passes bytes: TLS, if its upstream serves it
                upstream = self.scenario.proxies[name].upstream.split(":")[0]
                return f"{self._scheme(upstream)}://{self.proxy_host}:{self.listen_ports[name]}"
            return f"{self._scheme(name)}://{name}:{self.scenario.services[name].port}"

        return REFERENCE.sub(repl, value)

    def _scheme(self, name: str) -> str:
        return self.tls.scheme(name) if self.tls is not None else "http"

    def _start_tls(self, services: list[str]) -> None:
        """A scenario with TLS: the run's CA and each service's folder, gone with the run;
        the harness's own requests trust the CA meanwhile."""
        if not uses_tls(self.scenario):
            return
        self.tls = RunTls(self.scenario, self.run_dir, services, self.proxy_host)
        self.resources.callback(self.tls.close)
        self.tls.trust()

    def _start_services(self) -> None:
        """In dependency order: a service starts once everything in its depends_on is healthy."""
        assert self.env is not None
        ready: set[str] = set()
        order = self.scenario.start_order()
        self._start_tls(order)
        for name in order:
            service = self.scenario.services[name]
            for dep in service.depends_on:
                self._wait_ready(dep, ready)
            env = {k: self._substitute(v) for k, v in service.env_strings().items()}
            if service.llm is not None:  # the LLM provider's script (docker/llm-provider)
                rid = self.scenario.load.request_id
                env[SCRIPT_ENV] = script_env(name, service.llm, rid.header, rid.body_field)
            if self.tls is not None:
                env.update(self.tls.env(name))
            self.env.start(name, self.images[name], service.port, env, memory=service.memory,
                           cpus=service.cpus,
                           writable=image_writable(self.env.client, self.images[name]),
                           volumes=self.tls.mount(name) if self.tls is not None else None,
                           scheme=self._scheme(name))
            self.moved({name})
        for name in order:
            self._wait_ready(name, ready)

    def _wait_ready(self, name: str, ready: set[str]) -> None:
        assert self.env is not None
        if name in ready:
            return
        service = self.scenario.services[name]
        seconds = self.env.wait_healthy(name, service.health, timeout=self.ready_timeout)
        ready.add(name)
        version, warning = self._gateway_version(name)
        self.bus.emit(ServiceReady(service=name, image=self.images[name], seconds=seconds,
                                   version=version or "", warning=warning))

    def _gateway_version(self, name: str) -> tuple[str | None, str]:
        """The load target of a ``gateway: NAME:PROFILE`` run: its profile's version line."""
        spec = self.scenario.gateway
        if spec is None or name != self.scenario.load.target or self.env is None:
            return None, ""
        try:
            profile = find(spec)[0]
        except ScenarioError as exc:  # the profile changed since the run was validated
            return None, exc.render()
        self.gateway_version, warning = read_version(self.env.container(name), profile.version)
        return self.gateway_version, warning

    def _start_capture(self) -> None:
        """tcpdump + ss sidecars before the load starts, so the first SYNs are in the pcaps."""
        spec = self.scenario.capture_spec()
        if spec is None or self.env is None:
            return
        services = spec.services or list(self.scenario.services)
        self.bus.emit(CaptureStarted(services=tuple(services)))
        self.capture, self.capture_names = start_capture(
            self.env, self.tool_images[CAPTURE_IMAGE], services, spec.max_mb, spec.max_seconds,
            spec.ss_interval)
        self.resources.callback(self._stop_capture)
        for service, sidecar in self.capture.sidecars.items():
            self.harness_containers[sidecar.name or service] = f"the capture sidecar on {service}"

    # -- what the phase loop asks -----------------------------------------------------
    def service_url(self, name: str) -> str:
        assert self.env is not None
        return self.env.services[name].host_url

    def load_target(self) -> str:
        assert self.env is not None
        return self.env.services[self.scenario.load.target].direct_url(self.env.prefix)

    def fault_context(self) -> FaultContext:
        assert self.env is not None and self.proxies is not None
        return FaultContext(self.proxies, self.env, self.service_url, self.tls)

    # -- teardown (each step registered on the ExitStack as its resource appeared) --------
    def _stop_capture(self) -> None:
        """Stopped and copied out before the environment sweep."""
        if self.capture is not None:
            self.captured = self.capture.stop(self.run_dir)
            self.capture = None

    def _remove_environment(self) -> None:
        assert self.env is not None
        self.logs = self.env.collect_logs(self.run_dir / "logs")
        problems = self.unwind_ledger()
        problems += self.env.teardown()
        if problems:
            self.bus.emit(TeardownProblems(problems=tuple(problems)))
        self.bus.emit(LabelledRemoved(run_id=self.run_id))

    def removers(self) -> dict[str, Remover]:
        removers = super().removers()
        if self.env is not None:
            removers.update(docker_removers(self.env.client, self.run_id))
        return removers
