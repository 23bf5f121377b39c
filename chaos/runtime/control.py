"""The control path to the Toxiproxy API, and read-only root filesystems.

The containers under test must not reach the Toxiproxy API (unauthenticated: anyone
who reaches it can add or remove toxics, or point a proxy anywhere). So the run's
Toxiproxy container also joins a second bridge network, ``<run>-control``, that no
other container joins, and its API listens on that network's address only; its proxy
listeners stay on the run network. Docker isolates bridge networks from each other,
so a service can reach neither the API's address nor, on the run network, a listener
on 8474. The harness reaches the API through the port published on 127.0.0.1, which
Docker forwards to the container's address on its first network: the control one.

The API's address must be known when the container is created (the real server takes
it as ``-host=``). On a network nothing else joins, Docker gives the first container
the address after the bridge's gateway; the session checks that it did.

Root filesystems are read-only wherever an image allows it: the project's images say
which paths they write (the ``gateway-chaos.writable`` label, a space-separated list,
mounted as tmpfs); images without the label keep a writable root.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from chaos.errors import EnvironmentProblem
from chaos.runtime import labels as L

if TYPE_CHECKING:
    import docker
    from docker.models.networks import Network

    from chaos.runtime.ledger import Ledger

WRITABLE_LABEL = "gateway-chaos.writable"
TMPFS = "rw,nosuid,nodev,size=64m,mode=1777"


def create_control_network(client: docker.DockerClient, prefix: str, labels: dict[str, str],
                           ledger: Ledger | None = None) -> tuple[Network, str]:
    """The run's control network and the address the Toxiproxy API will have on it."""
    name = f"{prefix}-control"
    if ledger is not None:
        ledger.intend("network", name, role="control")
    network = client.networks.create(name, driver="bridge", check_duplicate=True,
                                     labels={**labels, L.NETWORK: "control"})
    network.reload()
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    v4 = [c for c in configs if c.get("Gateway") and ":" not in c["Gateway"]]
    if not v4:
        raise EnvironmentProblem(f"network {name} has no IPv4 gateway: {configs}")
    return network, str(ipaddress.ip_address(v4[0]["Gateway"]) + 1)


def check_address(container: Any, network: str, expected: str) -> None:
    """The API listens on ``expected``: the container must have got that address."""
    container.reload()
    got = ((container.attrs["NetworkSettings"]["Networks"] or {}).get(network) or {}).get(
        "IPAddress")
    if got != expected:
        raise EnvironmentProblem(f"the Toxiproxy container got {got} on {network}, but its API "
                                 f"was bound to {expected}; rerun (another container joined "
                                 "the control network?)")


def image_writable(client: docker.DockerClient, image: str) -> tuple[str, ...] | None:
    """The paths an image writes (its label), or None: it needs a writable root."""
    from docker.errors import DockerException

    try:
        value = (client.images.get(image).labels or {}).get(WRITABLE_LABEL)
    except DockerException:
        return None
    return None if value is None else tuple(value.split())


def rootfs_options(writable: tuple[str, ...] | None) -> dict[str, Any]:
    """docker-py run/create keywords: a read-only root with tmpfs where the image writes."""
    if writable is None:
        return {}
    return {"read_only": True, "tmpfs": {path: TMPFS for path in writable}}
