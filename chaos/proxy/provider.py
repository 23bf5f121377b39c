"""Which Toxiproxy server a run talks to, in the order issue 4 asks for.

1. ``TOXIPROXY_URL``: a server the user runs. It is used only when it answers
   ``GET /version`` within two seconds; otherwise the run falls through to the
   next provider and the recorded provider name says why. Such a server must sit
   on the Docker host itself; how a run uses it (no Toxiproxy container, run-unique
   proxy names, addresses on the run's bridge, exact cleanup, what is refused) is
   ``chaos.proxy.external``. Callers that cannot do all that leave
   ``external_supported=False``, and ``choose`` then refuses a reachable URL
   with an ``EnvironmentProblem`` rather than record a server they would not use.
2. ``ghcr.io/shopify/toxiproxy`` present locally (nothing is pulled): run as the
   ``toxiproxy`` container on the run's network, its default command
   ``-host=0.0.0.0`` serving the API inside the container.
3. A ``toxiproxy-server`` binary on PATH: it runs where the real image would,
   on the run's network, because only there can it resolve ``backend:8080``
   and be reached as ``toxiproxy:2000x``. The binary is copied into a small
   image (``FROM scratch`` when it is statically linked, as release builds are;
   FROM the project's base image when it needs a libc), tagged by the binary's
   hash so that it is built once. A file that is not a Linux ELF executable
   (a macOS build, a script) is skipped with a note.
4. Otherwise the project's own server (``chaos.proxy.embedded``) in the image
   built from ``docker/toxiproxy``.

``choose`` gets images through the small ``ImageStore`` protocol so that the
order can be tested without Docker.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import requests

from chaos.errors import EnvironmentProblem, ScenarioError
from chaos.scenario.http_toxics import HTTP_TOXIC_TYPES

if TYPE_CHECKING:
    import docker

    from chaos.scenario.model import Scenario


REAL_IMAGE = "ghcr.io/shopify/toxiproxy:latest"
BINARY = "toxiproxy-server"
BINARY_IMAGE = "gateway-chaos/toxiproxy-bin"
IMAGE_LABEL = "gateway-chaos.image"  # same label as chaos.runtime.images puts on built images
API_PORT = 8474
FIRST_LISTEN_PORT = 20000
HOSTNAME = "toxiproxy"
PROBE_TIMEOUT = 2.0

EMBEDDED = "embedded (gateway-chaos)"


@dataclass(frozen=True)
class ProviderChoice:
    """The server a run uses. ``name`` goes into the report as is."""

    name: str
    image: str | None  # the container image to run; None: build the project's image
    command: list[str] | None  # None: the image's own command
    kind: str = "embedded"  # "url" | "image" | "binary" | "embedded"
    url: str | None = None  # kind "url": the user's API; the run starts no Toxiproxy container

    @property
    def starts_container(self) -> bool:
        return self.kind != "url"


class ImageStore(Protocol):
    """What ``choose`` needs from Docker's image store."""

    def exists(self, ref: str) -> bool: ...

    def build(self, context: bytes, tag: str) -> None:
        """Build a tar build context (Dockerfile at its root) as ``tag``."""


class DockerImages:
    """``ImageStore`` over docker-py."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def exists(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(ref)
        except ImageNotFound:
            return False
        return True

    def build(self, context: bytes, tag: str) -> None:
        from docker.errors import BuildError

        try:
            self.client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                                     rm=True, forcerm=True, labels={IMAGE_LABEL: "toxiproxy-bin"})
        except BuildError as exc:
            raise EnvironmentProblem(f"building {tag} from {BINARY} failed: {exc.msg}") from exc


def probe_version(url: str, timeout: float = PROBE_TIMEOUT) -> str:
    """The server's version; raises ``OSError``/``requests`` errors when it does not answer."""
    response = requests.get(url.rstrip("/") + "/version", timeout=timeout)
    response.raise_for_status()
    try:
        body = response.json()
    except ValueError:  # before 2.1 the version was plain text
        return response.text.strip()
    return str(body.get("version", "")) if isinstance(body, dict) else str(body)


def elf_linking(path: Path) -> str | None:
    """``"static"`` or ``"dynamic"`` for an ELF executable, None for anything else."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(65536)
    except OSError:
        return None
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    end = "<" if data[5] == 1 else ">"
    if data[4] == 2:
        (phoff,) = struct.unpack_from(end + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
    else:
        (phoff,) = struct.unpack_from(end + "I", data, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 42)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(data):
            return "dynamic"  # headers beyond what was read: assume it needs a libc
        if struct.unpack_from(end + "I", data, offset)[0] == 3:  # PT_INTERP
            return "dynamic"
    return "static"


def binary_context(binary: Path, base: str | None) -> tuple[bytes, str]:
    """The build context and content tag of an image that runs ``binary``."""
    payload = binary.read_bytes()
    dockerfile = "\n".join([
        f"FROM {base or 'scratch'}",
        f"COPY {BINARY} /{BINARY}",
        *([] if base is None else ["USER nobody"]),
        f"EXPOSE {API_PORT}",
        f'ENTRYPOINT ["/{BINARY}"]',
        f'CMD ["-host=0.0.0.0", "-port={API_PORT}"]',
        "",
    ]).encode()
    digest = hashlib.sha256(dockerfile + b"\0" + payload).hexdigest()[:12]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", dockerfile, 0o644), (BINARY, payload, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), f"{BINARY_IMAGE}:{digest}"


def choose(client: docker.DockerClient | None = None, *, images: ImageStore | None = None,
           environ: Mapping[str, str] | None = None,
           which: Callable[[str], str | None] = shutil.which,
           probe: Callable[[str], str] = probe_version,
           base_image: Callable[[], str] | None = None,
           external_supported: bool = False) -> ProviderChoice:
    """Pick the server for a run (see the module docstring for the order and why)."""
    if images is None:
        if client is None:
            raise ValueError("choose() needs a docker client or an ImageStore")
        images = DockerImages(client)
    env = os.environ if environ is None else environ
    notes: list[str] = []

    url = (env.get("TOXIPROXY_URL") or "").strip()
    if url:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        url = f"{parts.scheme or 'http'}://{parts.netloc}"
        try:
            version = probe(url)
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable
            notes.append(f"TOXIPROXY_URL {url} did not answer ({type(exc).__name__})")
        else:
            if not external_supported:
                raise EnvironmentProblem(
                    f"TOXIPROXY_URL={url} (Toxiproxy {version}) is set, but this run starts "
                    "Toxiproxy on the scenario's own Docker network, where it can reach the "
                    "services by name; a server outside that network is not supported here. "
                    "Unset TOXIPROXY_URL to let the run start its own server.")
            return ProviderChoice(f"TOXIPROXY_URL {url} (Toxiproxy {version})", None, None,
                                  kind="url", url=url)

    def noted(name: str) -> str:
        return f"{name}; {'; '.join(notes)}" if notes else name

    if images.exists(REAL_IMAGE):
        return ProviderChoice(noted(f"toxiproxy image {REAL_IMAGE}"), REAL_IMAGE,
                              ["-host=0.0.0.0"], kind="image")

    found = which(BINARY)
    if found:
        path = Path(found).resolve()
        linking = elf_linking(path)
        if linking is None:
            notes.append(f"{BINARY} at {found} is not a Linux executable")
        else:
            base = None
            if linking == "dynamic":
                base = base_image() if base_image is not None else _project_base(client)
            context, tag = binary_context(path, base)
            if not images.exists(tag):
                images.build(context, tag)
            return ProviderChoice(noted(f"{BINARY} binary {found} (in image {tag})"), tag, None,
                                  kind="binary")

    return ProviderChoice(noted(EMBEDDED), None, None, kind="embedded")


def refuse_http_toxics(scenario: Scenario, choice: ProviderChoice,
                       probe: Callable[[str], str] = probe_version) -> None:
    """An HTTP- or stream-aware toxic (``http_abort``, ``sse_cut``, ...) exists only in the
    embedded server: on a real Toxiproxy server (an image, a binary, or a user's server at
    TOXIPROXY_URL, which may be either) the scenario is refused before anything starts.
    A server at TOXIPROXY_URL whose ``GET /version`` is the embedded server's (run
    standalone: ``chaos toxiproxy serve``) applies them, so it is not refused."""
    if choice.kind == "embedded":
        return
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            toxic = getattr(fault, "toxic", None)
            kind = getattr(toxic, "type", None)
            if kind not in HTTP_TOXIC_TYPES:
                continue
            why = _not_embedded(choice, probe)
            if why is None:
                return
            raise ScenarioError(
                f"toxic type {kind} is HTTP-aware and only the project's embedded "
                f"Toxiproxy server applies it; the run's Toxiproxy ({choice.name}) is a "
                f"real Toxiproxy server{why}, which forwards bytes and cannot see requests "
                "or events; run without TOXIPROXY_URL, the toxiproxy image or "
                "toxiproxy-server binary to use the embedded server",
                f"scenario {scenario.name}", key=f"phases[{i}].faults[{j}].toxic.type")


def _not_embedded(choice: ProviderChoice, probe: Callable[[str], str]) -> str | None:
    """None when ``choice`` is the embedded server at TOXIPROXY_URL; else why it is not."""
    if choice.kind != "url" or not choice.url:
        return ""
    from chaos.proxy.embedded.server import MARK, is_embedded_version

    url = choice.url if "//" in choice.url else f"http://{choice.url}"
    try:
        version = probe(url)
    except Exception as exc:  # noqa: BLE001 - any failure: not known to be the embedded one
        return f" as far as can be told (GET /version failed: {type(exc).__name__})"
    if is_embedded_version(version):
        return None
    return f" (GET /version is {version!r}; the embedded server's ends in {MARK!r})"


API_HOST_ENV = "TOXIPROXY_API_HOST"  # read by docker/toxiproxy's command (the embedded server)
WRITABLE: tuple[str, ...] = ("/tmp",)  # every provider's server runs with a read-only root


def api_binding(choice: ProviderChoice, host: str) -> tuple[list[str] | None, dict[str, str]]:
    """(command, environment) that make the run's server serve its API on ``host`` only.

    The real image and a binary take ``-host=``; the project's image reads the address
    from its environment, so that its own command (and options such as the event loop)
    stays the image's. The proxies' listeners are set per proxy, not here.
    """
    if choice.kind == "image":
        return [f"-host={host}"], {}
    if choice.kind == "binary":
        return [f"-host={host}", f"-port={API_PORT}"], {}
    return None, {API_HOST_ENV: host}


def _project_base(client: docker.DockerClient | None) -> str:
    if client is None:
        raise ValueError("a dynamically linked binary needs the project's base image")
    from chaos.runtime.base_image import ensure_base

    return ensure_base(client).tag


def listen_ports(proxy_names: list[str]) -> dict[str, int]:
    """Each proxy listens on its own port inside the Toxiproxy container."""
    return {name: FIRST_LISTEN_PORT + i for i, name in enumerate(proxy_names)}
