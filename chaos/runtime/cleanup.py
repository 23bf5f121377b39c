"""Finding and removing labelled Docker resources that may vanish while we look at them.

Another run tearing down on the same engine, or the daemon finishing a removal that a
SIGKILLed harness asked for, makes a container, network, image or volume disappear
between "list" and "inspect" or "remove". So listing never inspects object by object
(sparse lists, labels read from the list itself), a NotFound on inspect or remove means
"already gone", and a 409 "removal ... already in progress" means the daemon is removing
it: gone too (after a short wait, so that whoever checks right after sees it gone).
Every other error is reported, never swallowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docker.errors import APIError, NotFound

if TYPE_CHECKING:
    import docker

KINDS = ("container", "network", "volume", "image")  # the order a sweep removes them in
SETTLE_S = 10.0  # how long a removal the daemon already does may take before we move on


@dataclass(frozen=True)
class Found:
    """One labelled resource as listed (no inspect): enough to judge and remove it."""

    kind: str
    id: str
    name: str
    labels: dict[str, str]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def already_gone(exc: Exception) -> bool:
    """NotFound, or a removal the daemon is already doing (409 ... in progress)."""
    if isinstance(exc, NotFound):
        return True
    if not isinstance(exc, APIError) or exc.status_code != 409:
        return False
    return "in progress" in str(exc.explanation or exc).lower()


def _label_filter(match: dict[str, str] | list[str]) -> dict[str, list[str]]:
    if isinstance(match, dict):
        return {"label": [f"{k}={v}" for k, v in match.items()]}
    return {"label": list(match)}


def listed(client: docker.DockerClient, match: dict[str, str] | list[str]) -> list[Found]:
    """Containers, networks, volumes and images carrying the labels (``key`` or ``key=value``)."""
    filters = _label_filter(match)
    api = client.api
    found = [Found("container", c["Id"], (c.get("Names") or [c["Id"]])[0].lstrip("/"),
                   c.get("Labels") or {}) for c in api.containers(all=True, filters=filters)]
    found += [Found("network", n["Id"], n.get("Name") or n["Id"], n.get("Labels") or {})
              for n in api.networks(filters=filters)]
    found += [Found("volume", v["Name"], v["Name"], v.get("Labels") or {})
              for v in (api.volumes(filters=filters) or {}).get("Volumes") or []]
    found += [Found("image", i["Id"], _image_name(i), i.get("Labels") or {})
              for i in api.images(filters=filters)]
    return found


def _image_name(image: dict[str, Any]) -> str:
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    return tags[0] if tags else str(image["Id"])


def remove(client: docker.DockerClient, item: Found) -> str | None:
    """Remove one resource; None when it is gone (whoever removed it), else the problem."""
    api = client.api
    removers: dict[str, Callable[[], Any]] = {
        "container": lambda: api.remove_container(item.id, force=True, v=True),
        "network": lambda: api.remove_network(item.id),
        "volume": lambda: api.remove_volume(item.id),
        "image": lambda: api.remove_image(item.id),
    }
    inspectors: dict[str, Callable[[], Any]] = {
        "container": lambda: api.inspect_container(item.id),
        "network": lambda: api.inspect_network(item.id),
        "volume": lambda: api.inspect_volume(item.id),
        "image": lambda: api.inspect_image(item.id),
    }
    deadline = time.monotonic() + SETTLE_S
    while True:
        try:
            removers[item.kind]()
            return None
        except APIError as exc:
            if already_gone(exc):
                if not isinstance(exc, NotFound):
                    wait_gone(inspectors[item.kind])
                return None
            if not _detaching(exc) or time.monotonic() > deadline:
                return f"{item}: {exc}"
        time.sleep(0.2)


def _detaching(exc: APIError) -> bool:
    """A network whose last container is still being removed: it frees up in a moment."""
    return "active endpoints" in str(exc.explanation or exc)


def wait_gone(inspect: Callable[[], Any], timeout: float = SETTLE_S) -> bool:
    """Until inspect says NotFound (True), or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            inspect()
        except NotFound:
            return True
        except APIError:
            return False
        time.sleep(0.1)
    return False


def sweep(client: docker.DockerClient, match: dict[str, str]) -> list[str]:
    """Remove containers, then networks, volumes and images carrying all the given labels."""
    found = listed(client, match)
    problems: list[str] = []
    for kind in KINDS:
        for item in found:
            if item.kind == kind and (problem := remove(client, item)) is not None:
                problems.append(problem)
    return problems
