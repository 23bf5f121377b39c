"""Evidence sidecars: tcpdump and `ss` inside each chosen service's network namespace.

One short-lived container per service (docker/capture), started with the run's labels
through RunEnvironment.start_sidecar like the network-fault sidecars: only it holds
NET_RAW/NET_ADMIN (and SETUID/SETGID/KILL, so that tcpdump drops to its own user and
can be stopped); the service keeps no capabilities. tcpdump writes a ring buffer of
files (-C/-W: at most max_mb on disk), headers only (-s 160), and a timer inside the
sidecar stops it after max_seconds. A shell loop next to it writes one line of socket
state counts per interval. At teardown the harness stops both, copies /captures out
with get_archive and removes the sidecar (the run's label sweep is the safety net).
"""

from __future__ import annotations

import contextlib
import io
import math
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.types import Mount

from chaos.errors import EnvironmentProblem
from chaos.runtime import labels as L
from chaos.runtime.environment import RunEnvironment

IMAGE = "capture"  # docker/capture
CAPS = ["NET_RAW", "NET_ADMIN", "SETUID", "SETGID", "KILL"]
RING_FILES = 4
SNAPLEN = 160
LABEL_TARGET = "gateway-chaos.capture.target"


@dataclass(frozen=True)
class Limits:
    max_mb: int = 20
    max_seconds: float = 120.0
    ss_interval: float = 1.0

    @property
    def file_mb(self) -> int:
        """tcpdump -C is in millions of bytes; the ring holds RING_FILES of them."""
        return max(1, math.floor(self.max_mb / RING_FILES))


def start_script(service: str, limits: Limits) -> str:
    """Runs detached in the sidecar; everything it writes lands under /captures."""
    ss_loop = (
        "while [ ! -e /captures/stop ]; do "
        "ss -tanH state all 2>/dev/null | awk -v t=\"$(date +%s.%N)\" "
        "'{c[$1]++} END {printf \"%s\", t; for (s in c) printf \" %s=%d\", s, c[s]; "
        "printf \"\\n\"}'; "
        f"sleep {limits.ss_interval:g}; done >> /captures/ss.txt"
    )
    return "\n".join([
        "cd /captures",
        "date +%s.%N > /captures/started",
        f"tcpdump -i any -n -U -s {SNAPLEN} -C {limits.file_mb} -W {RING_FILES} "
        f"-w /captures/pcap/{service}.pcap tcp > /captures/tcpdump.log 2>&1 &",
        "echo $! > /captures/tcpdump.pid",
        f"( {ss_loop} ) &",
        f"( sleep {limits.max_seconds:g}; if [ ! -e /captures/stop ]; then "
        "touch /captures/time-limit /captures/stop; kill -INT $(cat /captures/tcpdump.pid); fi ) &",
        "wait",
    ])


STOP_SCRIPT = (
    "touch /captures/stop; kill -INT $(cat /captures/tcpdump.pid) 2>/dev/null; "
    "for i in $(seq 1 30); do kill -0 $(cat /captures/tcpdump.pid) 2>/dev/null || exit 0; "
    "sleep 0.1; done; kill -KILL $(cat /captures/tcpdump.pid) 2>/dev/null; exit 0"
)


@dataclass
class Captured:
    """What the sidecars left in the run folder."""

    folder: Path
    services: list[str]
    notes: list[str] = field(default_factory=list)
    time_limited: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)


class CaptureSet:
    """The evidence sidecars of one run."""

    def __init__(self, env: RunEnvironment, image: str, services: list[str], limits: Limits) -> None:
        self.env = env
        self.image = image
        self.services = services
        self.limits = limits
        self.sidecars: dict[str, Container] = {}

    def start(self) -> None:
        for name in self.services:
            service = self.env.services.get(name)
            if service is None:
                raise EnvironmentProblem(f"capture: no running service named {name!r}")
            sidecar = self.env.start_sidecar(  # /captures: a volume, get_archive cannot read tmpfs
                f"capture-{name}", self.image, service.container, CAPS,
                {L.SERVICE: f"capture-{name}", LABEL_TARGET: name},
                mounts=[Mount("/captures", None, type="volume")])
            self.sidecars[name] = sidecar
            try:
                sidecar.exec_run(["sh", "-c", start_script(name, self.limits)], detach=True)
            except APIError as exc:
                raise EnvironmentProblem(f"capture on {name}: cannot start tcpdump: {exc}") from exc
        deadline = time.monotonic() + 5
        for name, sidecar in self.sidecars.items():  # tcpdump says "listening" once it is
            while time.monotonic() < deadline:
                code, out = sidecar.exec_run(["cat", "/captures/tcpdump.log"])
                if b"listening on" in (out or b""):
                    break
                if b"tcpdump:" in (out or b"") and b"data link" not in (out or b""):
                    raise EnvironmentProblem(f"capture on {name}: {out.decode(errors='replace')}")
                time.sleep(0.1)

    def remove(self) -> None:
        for sidecar in self.sidecars.values():
            with contextlib.suppress(NotFound, APIError):
                sidecar.remove(force=True, v=True)  # and its /captures volume
        self.sidecars.clear()

    def stop(self, run_dir: Path) -> Captured:
        """Stop tcpdump and ss, copy everything out, remove the sidecars. Never raises."""
        folder = run_dir / "capture"
        captured = Captured(folder, list(self.sidecars))
        for name, sidecar in self.sidecars.items():
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            try:
                sidecar.exec_run(["sh", "-c", STOP_SCRIPT])
                _extract(sidecar, target)
            except (APIError, NotFound) as exc:
                captured.notes.append(f"{name}: could not copy the capture out: {exc}")
            if (target / "time-limit").exists():
                captured.time_limited.append(name)
            with contextlib.suppress(OSError, ValueError):
                captured.started[name] = float((target / "started").read_text().strip())
            with contextlib.suppress(NotFound, APIError):
                sidecar.remove(force=True, v=True)  # and its /captures volume
        self.sidecars.clear()
        return captured


def _extract(sidecar: Container, target: Path) -> None:
    """Regular files of /captures only, flattened to their names (no paths from the archive)."""
    stream, _ = sidecar.get_archive("/captures")
    data = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=data) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            name = Path(member.name).name
            if name in ("tcpdump.pid", "stop") or name.startswith("."):
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                (target / name).write_bytes(handle.read())


def ip_names(env: RunEnvironment, proxy_service: str = "toxiproxy") -> dict[str, str]:
    """The run network's addresses by name: services, "proxy", and the host side ("client")."""
    names: dict[str, str] = {}
    for name, service in env.services.items():
        with contextlib.suppress(APIError, NotFound):
            ip = service.network_ip(env.prefix)
            if ip is not None:
                names[ip] = "proxy" if name == proxy_service else name
    with contextlib.suppress(APIError, NotFound):
        for gateway in env.gateway_ips():
            names[gateway] = "client"  # the load generator on the host
    return names


def start_capture(env: RunEnvironment, image: str, services: list[str], max_mb: int,
                  max_seconds: float, ss_interval: float) -> tuple[CaptureSet, dict[str, str]]:
    limits = Limits(max_mb, max_seconds, ss_interval)
    capture = CaptureSet(env, image, services, limits)
    try:
        capture.start()
    except EnvironmentProblem:
        capture.remove()
        raise
    return capture, ip_names(env)
