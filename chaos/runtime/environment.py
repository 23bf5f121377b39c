"""One run's Docker resources: a network and labelled containers, torn down together.

Published ports bind to 127.0.0.1 only; containers run without capabilities,
with no-new-privileges and resource limits.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from chaos.errors import EnvironmentProblem, ServiceNotReady
from chaos.runtime import health
from chaos.runtime import labels as L
from chaos.runtime.cleanup import sweep
from chaos.runtime.control import rootfs_options
from chaos.runtime.ledger import Ledger

SIDECAR_WRITABLE = ("/run", "/tmp")  # iptables' lock file; the tools' scratch space


@dataclass
class RunningService:
    name: str
    image: str
    container: Container
    port: int
    host_port: int
    scheme: str = "http"  # https: it serves TLS (chaos.tls)

    @property
    def host_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.host_port}"

    def network_ip(self, network: str) -> str | None:
        self.container.reload()
        nets = self.container.attrs["NetworkSettings"]["Networks"] or {}
        ip = (nets.get(network) or {}).get("IPAddress")
        return ip or None

    def direct_url(self, network: str) -> str:
        """The container's own address on the run's network when the host can reach it.

        Docker's userland proxy behind published ports turns a container's TCP RST
        into a clean FIN, hiding exactly the failure this tool looks for; the
        container's address on the run's own bridge network does not.
        """
        ip = self.network_ip(network)
        if ip is not None and _reachable(ip, self.port):
            return f"{self.scheme}://{ip}:{self.port}"
        return self.host_url


def _reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class RunEnvironment:
    """Creates and removes one run's network and containers (all labelled with the run id)."""

    def __init__(self, client: docker.DockerClient, run_id: str, scenario: str,
                 ledger: Ledger | None = None) -> None:
        self.client = client
        self.run_id = run_id
        self.ledger = ledger
        self.labels = L.run_labels(run_id, scenario)
        self.network: Network | None = None
        self.services: dict[str, RunningService] = {}
        self.prefix = f"chaos-{run_id}"
        self.tool_images: dict[str, str] = {}  # helper images a fault needs (e.g. netfault)

    def create_network(self) -> str:
        if self.ledger is not None:
            self.ledger.intend("network", self.prefix)
        self.network = self.client.networks.create(
            self.prefix, driver="bridge", labels=self.labels, check_duplicate=True
        )
        return self.prefix

    def gateway_ips(self) -> list[str]:
        """The host's own addresses on the run's bridge network, IPv4 first.

        Containers reach the host there: the load generator's traffic comes from them, and
        a Toxiproxy server on the host (TOXIPROXY_URL) listens on the first.
        """
        if self.network is None:
            return []
        self.network.reload()
        gateways = [c.get("Gateway") for c in (self.network.attrs.get("IPAM") or {}).get(
            "Config") or [] if c.get("Gateway")]
        return sorted(gateways, key=lambda ip: ":" in ip)  # IPv4 before IPv6

    def gateway_ip(self) -> str | None:
        gateways = self.gateway_ips()
        return gateways[0] if gateways else None

    def start(self, name: str, image: str, port: int, env: dict[str, str],
              memory: str = "512m", cpus: float = 1.0, extra_ports: tuple[int, ...] = (),
              command: list[str] | None = None, control: Network | None = None,
              writable: tuple[str, ...] | None = None, publish: bool = True,
              volumes: dict[str, dict[str, str]] | None = None,
              scheme: str = "http") -> RunningService:
        """Run a service container on the run's network, its ports published to 127.0.0.1.

        ``control``: the container's first network (where the published ports lead) is
        that one, and it joins the run's network second, by its name (chaos.runtime.control).
        ``writable``: a read-only root with tmpfs on these paths (None: a writable root).
        ``publish=False``: no port is published (host_port 0); the host uses its address.
        ``volumes``: bind mounts (the Docker SDK's form), e.g. a TLS folder read-only;
        ``scheme``: https for a service that serves TLS (its URLs say so).
        """
        assert self.network is not None, "create_network() first"
        ports = {f"{p}/tcp": ("127.0.0.1", None) for p in (port, *extra_ports) if publish}
        if self.ledger is not None:
            self.ledger.intend("container", f"{self.prefix}-{name}", service=name, image=image)
        options = dict(
            name=f"{self.prefix}-{name}", detach=True, environment=env, command=command,
            labels={**self.labels, L.SERVICE: name}, ports=ports, mem_limit=memory,
            nano_cpus=int(cpus * 1e9), pids_limit=512, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], hostname=name, volumes=volumes or {},
            **rootfs_options(writable))
        try:
            if control is None:
                container = self.client.containers.run(image, network=self.network.name,
                                                       **options)
            else:
                container = self.client.containers.create(image, network=control.name, **options)
                self.network.connect(container, aliases=[name])
                container.start()
        except APIError as exc:
            raise EnvironmentProblem(f"cannot start service {name!r} ({image}): {exc}") from exc
        host_port = self._host_port(container, port) if publish else 0
        service = RunningService(name, image, container, port, host_port, scheme)
        self.services[name] = service
        return service

    def start_sidecar(self, name: str, image: str, target: Container, cap_add: list[str],
                      labels: dict[str, str] | None = None, **extra: Any) -> Container:
        """A helper container inside a service's network namespace, labelled with the run id.

        Only the sidecar gets the capabilities it needs (e.g. NET_ADMIN); the service
        keeps none. The run's label sweep removes it on every exit path.
        """
        if self.ledger is not None:
            self.ledger.intend("container", f"{self.prefix}-{name}", sidecar=True, image=image)
        try:
            return self.client.containers.run(
                image, ["sleep", "infinity"], name=f"{self.prefix}-{name}", detach=True,
                labels={**self.labels, **(labels or {})}, network_mode=f"container:{target.id}",
                cap_drop=["ALL"], cap_add=cap_add, security_opt=["no-new-privileges"],
                mem_limit="64m", pids_limit=64, **{**rootfs_options(SIDECAR_WRITABLE), **extra},
            )
        except APIError as exc:
            raise EnvironmentProblem(f"cannot start sidecar {name!r} ({image}): {exc}") from exc

    def _host_port(self, container: Container, port: int) -> int:
        for _ in range(50):
            container.reload()
            bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
            if bindings:
                return int(bindings[0]["HostPort"])
            if container.status == "exited":
                break
            time.sleep(0.1)
        raise ServiceNotReady(container.name or "?", f"port {port} was not published",
                              self.logs(container))

    def host_port(self, name: str, port: int) -> int:
        return self._host_port(self.services[name].container, port)

    def wait_healthy(self, name: str, path: str | None, timeout: float | None = None) -> float:
        """Wait until GET path answers 2xx/3xx on the published port; returns seconds waited.

        timeout None: CHAOS_READY_TIMEOUT, else 60 s (chaos.runtime.health).
        """
        service = self.services[name]
        if path is None:
            return 0.0

        def alive() -> None:
            service.container.reload()
            if service.container.status in ("exited", "dead"):
                raise ServiceNotReady(name, f"the container exited "
                                      f"(code {service.container.attrs['State']['ExitCode']})",
                                      self.logs(service.container))

        return health.wait_healthy(name, service.host_url + path, path,
                                   health.ready_timeout() if timeout is None else timeout,
                                   alive, lambda: self.logs(service.container))

    def container(self, name: str) -> Container:
        return self.services[name].container

    @staticmethod
    def logs(container: Container, lines: int | None = 30) -> str:
        try:
            raw = container.logs(tail="all" if lines is None else lines, timestamps=True)
            return raw.decode(errors="replace").rstrip()
        except (APIError, NotFound):
            return ""

    def collect_logs(self, folder: Path | None = None, lines: int = 60) -> dict[str, str]:
        """Last lines per service; with a folder, also each service's whole log as a file."""
        tails = {}
        for name, service in self.services.items():
            text = self.logs(service.container, lines=None)
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}.log").write_text(text + "\n", encoding="utf-8")
            tails[name] = "\n".join(text.splitlines()[-lines:])
        return tails

    def teardown(self) -> list[str]:
        """Remove everything labelled with this run id (its own images too); returns what
        could not be removed. Resources that vanish meanwhile count as removed."""
        return sweep(self.client, {L.RUN: self.run_id})

