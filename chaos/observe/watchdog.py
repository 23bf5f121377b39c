"""The harness watches its own parts, so that their failures are never read as the gateway's.

A run depends on parts that are not under test: the Toxiproxy server (the run's
container, or a user's server at TOXIPROXY_URL), the Locust process, and the capture
and network-fault sidecars. When one of them dies mid-run, every later second of
traffic measures the harness, not the gateway: a dead proxy looks exactly like a dead
backend. So the session asks ``Watchdog.check()`` throughout its phase loop (and once
more when a phase fails); a dead part ends the run with ``PartFailed`` (exit 3),
naming the part, how it died (exit code, OOM, signal) and when, and the reports mark
the seconds it affected.

Checks are cheap and rate-limited: one ``containers.list`` per interval covers every
sidecar and the proxy container; a process check is a ``poll()``; a URL check is one
``GET /version`` with a short timeout (two misses in a row count, a single slow answer
does not).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from chaos.errors import PartFailed
from chaos.runtime import labels as L
from chaos.verdict.result import PartFailure

if TYPE_CHECKING:
    import docker

# What a finding is before the run's clock is applied: (part, how, detail, died_at epoch).
Finding = tuple[str, str, str, float | None]
Check = Callable[[], Finding | None]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def process_death(returncode: int) -> str:
    """How a subprocess ended, in words: 'killed by SIGKILL', 'exited with code 2'."""
    if returncode < 0:
        return f"killed by {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def container_death(state: dict[str, object]) -> str:
    """How a container ended, from its inspect State: exit code, OOM, the signal behind 137."""
    code = state.get("ExitCode")
    words = f"exited with code {code}"
    if state.get("OOMKilled"):
        return words + " (OOM-killed: out of memory)"
    if isinstance(code, int) and code > 128:
        words += f" (killed by {signal_name(code - 128)})"
    if state.get("Error"):
        words += f": {state['Error']}"
    return words


def _finished_at(state: dict[str, object]) -> float | None:
    text = str(state.get("FinishedAt") or "")
    if not text or text.startswith("0001-"):
        return None
    try:  # Docker writes nanoseconds; fromisoformat takes at most microseconds
        head, _, frac = text.rstrip("Z").partition(".")
        stamp = dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return None
    return stamp.timestamp()


def process_check(part: str, proc: subprocess.Popen[bytes], log_tail: Callable[[], str]) -> Check:
    def check() -> Finding | None:
        code = proc.poll()
        if code is None:
            return None
        return part, process_death(code), log_tail(), None

    return check


def url_check(part: str, url: str, timeout: float = 2.0, misses: int = 2) -> Check:
    """A server the harness does not run itself: it is dead when its API stops answering."""
    missed: list[str] = []

    def check() -> Finding | None:
        try:
            requests.get(url.rstrip("/") + "/version", timeout=timeout).raise_for_status()
        except requests.RequestException as exc:
            missed.append(f"{type(exc).__name__}: {exc}")
            if len(missed) >= misses:
                return part, f"stopped answering at {url} ({len(missed)} probes failed)", \
                    missed[-1], None
            return None
        missed.clear()
        return None

    return check


def container_check(client: docker.DockerClient, run_id: str,
                    parts: Callable[[], dict[str, str]],
                    transient: Callable[[dict[str, str]], str | None] | None = None) -> Check:
    """The harness's own containers of this run, by name -> part description.

    ``parts()`` (asked each time) must exist and run; ``transient`` names, from its labels,
    a part that comes and goes (a network fault's sidecar): watched while it exists.
    """
    from docker.errors import DockerException

    def check() -> Finding | None:
        expected = parts()
        try:
            found = client.containers.list(all=True, filters={"label": f"{L.RUN}={run_id}"})
        except DockerException:
            return None  # the engine itself: the next call will tell
        by_name = {c.name: c for c in found}
        for container in found:
            part = transient(container.labels or {}) if transient is not None else None
            if part is not None and container.name not in expected:
                expected[str(container.name)] = part
        for name, part in expected.items():
            container = by_name.get(name)
            if container is None:
                return part, f"container {name} was removed", "", None
            state = container.attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead") or state.get("OOMKilled"):
                logs = _logs(container)
                return part, f"container {name} {container_death(state)}", logs, \
                    _finished_at(state)
        return None

    return check


def _logs(container: object, lines: int = 20) -> str:
    try:
        raw = container.logs(tail=lines)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the logs are a courtesy, the finding is what counts
        return ""
    return bytes(raw).decode(errors="replace").rstrip()


@dataclass
class _Watched:
    part: str
    check: Check


class Watchdog:
    """Checks registered by the session; ``check`` raises PartFailed on the first dead part."""

    def __init__(self, origin: Callable[[], float], interval: float = 0.5) -> None:
        self.origin = origin  # the run's clock: seconds are counted from origin()
        self.interval = interval
        self.watched: list[_Watched] = []
        self.failure: PartFailure | None = None
        self._last_ok = time.time()
        self._next = 0.0

    def watch(self, part: str, check: Check) -> None:
        self.watched.append(_Watched(part, check))

    def unwatch(self, part: str) -> None:
        self.watched = [w for w in self.watched if w.part != part]

    def find(self, force: bool = False) -> PartFailure | None:
        """The first dead part (checked at most every ``interval`` unless forced)."""
        if self.failure is not None:
            return self.failure
        now = time.monotonic()
        if not force and now < self._next:
            return None
        self._next = now + self.interval
        for item in list(self.watched):
            finding = item.check()
            if finding is not None:
                self.failure = self._record(finding)
                return self.failure
        self._last_ok = time.time()
        return None

    def _record(self, finding: Finding) -> PartFailure:
        part, how, detail, died_at = finding
        now, origin = time.time(), self.origin()
        at = died_at if died_at is not None and died_at <= now else now
        since = at if died_at is not None else min(self._last_ok, at)
        return PartFailure(part=part, how=how, at=round(at - origin, 3),
                           affected_from=round(since - origin, 3),
                           affected_to=round(now - origin, 3), detail=detail[-4000:])

    def check(self, force: bool = False) -> None:
        failure = self.find(force)
        if failure is not None:
            error = PartFailed(failure.part, failure.how, failure.detail, failure.at)
            error.record = failure
            raise error
