"""Which Toxiproxy server a run talks to.

Issue-3 scope: TOXIPROXY_URL is not usable from inside the scenario network, so
the run starts the project's own Toxiproxy-API server as a container on the
scenario's network, exactly where the real ghcr.io/shopify/toxiproxy image would
sit (that image is used instead when it is present locally).
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.errors import ImageNotFound

REAL_IMAGE = "ghcr.io/shopify/toxiproxy:latest"
API_PORT = 8474
FIRST_LISTEN_PORT = 20000
HOSTNAME = "toxiproxy"


@dataclass(frozen=True)
class ProviderChoice:
    name: str  # "toxiproxy image" or "embedded (gateway-chaos)"
    image: str | None  # None: build the project's image
    command: list[str] | None


def choose(client: docker.DockerClient) -> ProviderChoice:
    try:
        client.images.get(REAL_IMAGE)
        return ProviderChoice("toxiproxy image", REAL_IMAGE, ["-host=0.0.0.0"])
    except ImageNotFound:
        return ProviderChoice("embedded (gateway-chaos)", None, None)


def listen_ports(proxy_names: list[str]) -> dict[str, int]:
    """Each proxy listens on its own port inside the Toxiproxy container."""
    return {name: FIRST_LISTEN_PORT + i for i, name in enumerate(proxy_names)}
