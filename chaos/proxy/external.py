"""A user's own Toxiproxy server (TOXIPROXY_URL) serving a run's proxies.

The server runs on the Docker host itself. The run starts no Toxiproxy container; its
proxies get run-unique names (``chaos-<run id>-<proxy>``, so two runs and the user's own
proxies never collide), listen on the host's address on the run's bridge network (the
network's gateway IP, which the containers reach; port 0, so the server picks a free
one) and dial the services by their container IPs (which the host reaches), set as soon
as each upstream container has started and again after a container fault (a restarted
container may get a new address). ``${proxy.x}`` becomes ``http://<gateway ip>:<port>``;
teardown and ``chaos doctor`` delete exactly those proxies (the ledger records them).
What only the run's own container offers (``peer: toxiproxy`` in network faults,
capturing the proxy's traffic) is refused before anything starts (``conflicts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from docker.errors import APIError

from chaos.errors import EnvironmentProblem, ProxyError
from chaos.observe.events import Event, ProxyCreated
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.provider import HOSTNAME
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.ledger import Ledger
from chaos.scenario.model import ContainerFault, NetFault, Scenario

EXTERNAL_PREFIX = "chaos-"  # a run's proxies on a user's server: chaos-<run id>-<name>
# Where a proxy on a user's server points until its upstream container has an address:
# refused at once on the host itself, so nothing leaves the machine meanwhile.
PLACEHOLDER_UPSTREAM = "127.0.0.1:1"
_REACH = ("import socket, sys\n"
          "try:\n"
          "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
          "except OSError as exc:\n"
          "    print(exc)\n"
          "    sys.exit(1)\n")


def listen_address(gateway_ip: str, port: int) -> str:
    """Listen address on a user's server (TOXIPROXY_URL) that the run's containers reach:
    the host's own address on the run's bridge network."""
    return f"[{gateway_ip}]:{port}" if ":" in gateway_ip else f"{gateway_ip}:{port}"


def upstream_address(upstream: str, service_ips: Mapping[str, str]) -> str:
    """``backend:8080`` -> ``<container ip>:8080``: a server on the host cannot resolve the
    names Docker's embedded DNS gives containers, but it can reach their addresses."""
    host, sep, port = upstream.rpartition(":")
    if sep and host in service_ips:
        return listen_address(service_ips[host], int(port))
    return upstream


def name_prefix(run_id: str) -> str:
    """What every proxy name of this run starts with on a user's server."""
    return f"{EXTERNAL_PREFIX}{run_id}-"


def proxy_name(run_id: str, name: str) -> str:
    """A scenario proxy's name on a user's server: unique per run, recognisable by doctor."""
    return name_prefix(run_id) + name


def owned_by_run(proxy_name: str, run_id: str) -> bool:
    """Is this proxy on a user's server one the run created? (Never trust a bare name.)"""
    prefix = name_prefix(run_id)
    return proxy_name.startswith(prefix) and len(proxy_name) > len(prefix)


def upstream_service(upstream: str, services: Mapping[str, Any]) -> str | None:
    """The scenario service a proxy's ``host:port`` upstream names, if any."""
    host, sep, _ = upstream.rpartition(":")
    return host if sep and host in services else None


def conflicts(scenario: Scenario) -> list[tuple[str, str]]:
    """(key path, why) for each scenario feature that needs the run's own Toxiproxy container.

    With a user's server the proxy is the host itself, whose bridge address is also the
    load generator's: a network rule or a capture aimed at "the proxy" would hit the
    client traffic too, so these are refused before anything starts.
    """
    found: list[tuple[str, str]] = []
    where = "the proxies run on the user's server at TOXIPROXY_URL, not in a container"
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            key = f"phases[{i}].faults[{j}]"
            if isinstance(fault, NetFault) and fault.peer == HOSTNAME:
                found.append((f"{key}.peer", f"peer {HOSTNAME} needs the run's own Toxiproxy "
                              f"container; {where} (its address is also the load "
                              "generator's), so the rule cannot single out proxy traffic"))
            if isinstance(fault, NetFault) and fault.service == HOSTNAME:
                found.append((f"{key}.service", f"{where}: there is no {HOSTNAME} "
                              "container to apply the rule in"))
            if isinstance(fault, ContainerFault) and fault.container == HOSTNAME \
                    and HOSTNAME not in scenario.services:
                found.append((f"{key}.container", f"{where}: there is no {HOSTNAME} "
                              "container to act on"))
    spec = scenario.capture_spec()
    for i, name in enumerate(spec.services or [] if spec is not None else []):
        if name == HOSTNAME and HOSTNAME not in scenario.services:
            found.append((f"capture.services[{i}]", f"{where}: there is no {HOSTNAME} "
                          "container to capture in"))
    for i, assertion in enumerate(scenario.assertions):
        for key in assertion.rst_from or {}:
            ends = {part.strip() for part in key.split("->")}
            if ends & {"proxy", "client"}:
                found.append((f"assertions[{i}].rst_from.{key}", f"{where}: in the packet "
                              "captures the proxy and the load generator share the host's "
                              "address, so resets to or from either cannot be told apart"))
    return found


class ExternalProxies:
    """The run's proxies on a user's server: created before any service, then kept pointed
    at the containers' current addresses."""

    def __init__(self, url: str, run_id: str, scenario: Scenario, env: RunEnvironment,
                 ledger: Ledger | None, emit: Callable[[Event], None]) -> None:
        gateway = env.gateway_ip()
        if gateway is None:
            raise EnvironmentProblem(f"the run's network {env.prefix} has no gateway "
                                     "address for proxies on TOXIPROXY_URL to listen on")
        self.url, self.scenario, self.env, self.ledger, self.emit = url, scenario, env, ledger, emit
        self.gateway = gateway
        self.host = listen_address(gateway, 0).rsplit(":", 1)[0]  # where services reach them
        self.names = {name: proxy_name(run_id, name) for name in scenario.proxies}
        self.client = ToxiproxyClient(url, names=self.names)
        self.ports: dict[str, int] = {}
        self.upstreams: dict[str, str] = {}  # proxy -> the upstream set on the server

    def create(self) -> None:
        """Each proxy listens on the host's address on the run's network (port 0: the server
        picks a free one); its upstream is set once its container has an address."""
        try:
            self.client.wait_ready(timeout=10)
        except ProxyError as exc:
            raise EnvironmentProblem(f"TOXIPROXY_URL {self.url} stopped answering: {exc}") from exc
        for name, spec in self.scenario.proxies.items():
            service = upstream_service(spec.upstream, self.scenario.services)
            upstream = spec.upstream if service is None else PLACEHOLDER_UPSTREAM
            if self.ledger is not None:
                self.ledger.intend("proxy", self.names[name], api=self.url, external=True,
                                   proxy=name)
            self.ports[name] = self._create_one(name, upstream)
            self.upstreams[name] = upstream

    def _create_one(self, name: str, upstream: str) -> int:
        full = self.names[name]
        try:
            info = self.client.create_proxy(name, listen_address(self.gateway, 0), upstream)
            if info.port == 0:  # a server that does not report the port it picked
                info = self.client.get_proxy(name)
        except ProxyError as exc:
            raise EnvironmentProblem(
                f"TOXIPROXY_URL {self.url}: cannot create proxy {full!r} listening on "
                f"{self.gateway} (the host's address on the run's Docker network): {exc}. The "
                "server must run on the Docker host itself (not in a container or on "
                "another machine); unset TOXIPROXY_URL to let the run start its own."
            ) from exc
        if info.port == 0:
            raise EnvironmentProblem(f"TOXIPROXY_URL {self.url}: proxy {full!r} reports "
                                     f"no port ({info.listen})")
        self.emit(ProxyCreated(name=name, listen=info.listen, upstream=upstream,
                               server_name=full, api=self.url))
        return info.port

    def point(self, services: set[str] | None = None) -> None:
        """Upstreams follow the containers' current addresses (of `services`, or all)."""
        for name, spec in self.scenario.proxies.items():
            target = upstream_service(spec.upstream, self.scenario.services)
            if target is None or (services is not None and target not in services):
                continue
            running = self.env.services.get(target)
            ip = running.network_ip(self.env.prefix) if running is not None else None
            if ip is None:
                continue  # stopped: no address; the proxy keeps the last one
            upstream = upstream_address(spec.upstream, {target: ip})
            if self.upstreams.get(name) != upstream:
                self.client.update_proxy(name, upstream=upstream)
                self.upstreams[name] = upstream

    def check_reach(self) -> None:
        """A firewall on the host may drop what the bridge sends to the host: say so now,
        not as a phase full of connect timeouts. Checked from a service that uses the
        proxy, when its image has python3 (otherwise the check is skipped)."""
        users = [s for s, spec in self.scenario.services.items()
                 if any(f"${{proxy.{p}}}" in v for v in spec.env_strings().values()
                        for p in self.scenario.proxies)]
        if not users or not self.ports:
            return
        container = self.env.container(users[0])
        host = self.host.strip("[]")
        for name, port in self.ports.items():
            try:
                code, output = container.exec_run(["python3", "-c", _REACH, host, str(port)])
            except APIError:
                return  # cannot exec (container gone, no shell): the run itself will tell
            if code in (126, 127) or code is None:
                return  # no python3 in this image: nothing to check with
            if code != 0:
                text = output.decode(errors="replace").strip() if output else ""
                raise EnvironmentProblem(
                    f"{users[0]} cannot reach proxy {name} at {host}:{port} on the host "
                    f"(TOXIPROXY_URL): {text}. A host firewall probably drops traffic from the "
                    f"run's Docker network ({self.env.prefix}) to the host; accept it, e.g. "
                    f"`iptables -I INPUT -s <network subnet> -d {host} -j ACCEPT`.")
