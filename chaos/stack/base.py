"""The seam between a run and its environment: a ``Stack``.

A stack brings an environment up (services, the proxies in front of their upstreams),
tells the phase loop where things are (service URLs, the load target, what faults act
on) and takes down everything it made on every path. Each resource goes on the stack's
ExitStack (and into the ledger, before it exists) as it is created, so a bring-up that
fails half-way unwinds exactly the half it made. Docker, loopback and external are
stacks; the phase loop (chaos.session) never knows which one it has.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from chaos.errors import EnvironmentProblem
from chaos.observe.watchdog import Watchdog
from chaos.proxy.cleanup import proxy_remover
from chaos.runtime.ledger import Entry, Ledger, Remover, process_remover

if TYPE_CHECKING:
    from chaos.capture.sidecar import Captured
    from chaos.faults.base import FaultContext
    from chaos.observe.events import EventBus
    from chaos.proxy.client import ToxiproxyClient
    from chaos.scenario.model import Scenario
    from chaos.tls.run import RunTls


class Stack(Protocol):
    """One run's environment. ``open()`` brings it up, ``close()`` takes down all it made
    (on every path, also after a failed ``open()``; it never raises for what it could not
    remove: that is reported on the bus and left in the ledger). As a context manager,
    ``__enter__`` opens (closing again if opening fails) and ``__exit__`` closes."""

    provider: str  # which Toxiproxy served the run (the report shows it)
    images: dict[str, str]  # service name -> image (or whatever ran it)
    logs: dict[str, str]  # service name -> log text, once closed
    capture_names: dict[str, str]  # run network IP -> service name (packet evidence)
    captured: Captured | None
    ledger: Ledger | None
    watchdog: Watchdog
    # the run's Toxiproxy has the embedded server's tap (chaos.witness): True; a real
    # Toxiproxy server: False; a server at TOXIPROXY_URL: None (its attempts endpoint tells)
    has_tap: bool | None

    def __enter__(self) -> Stack: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def service_url(self, name: str) -> str:
        """Where the harness itself reaches a service (its probes)."""

    def load_target(self) -> str:
        """Where the load generator sends the load."""

    def load_tls(self) -> dict[str, str] | None:
        """load.tls: the CA and the name to verify the target by (None: plain HTTP)."""

    def fault_context(self) -> FaultContext:
        """What faults act on (the proxies' API, the container runtime if any)."""

    def moved(self, services: set[str]) -> None:
        """A container fault may have given these services new addresses."""

    def proxy_dead(self) -> bool:
        """The proxy server died: its API is not asked again (each call costs seconds)."""

    def proxy_api_url(self, proxy: str | None = None) -> str | None:
        """Where the harness reaches the proxies' API (None: no server); with a proxy's
        scenario name, that proxy's URL on the server (``.../proxies/<its name there>``)."""


StackFactory = Callable[["Scenario", str, Path, "EventBus"], Stack]
"""(scenario, run id, run folder, event bus) -> stack; DockerStack is the default."""


class BaseStack:
    """What every stack shares: the ExitStack, the ledger, the watchdog, the proxies'
    client, and the ledger walk at the end. ``open()`` here brings nothing up, so a
    bare BaseStack is the empty environment (tests that drive the phase loop alone)."""

    provider = ""
    has_tap: bool | None = None
    gateway_version: str | None = None  # `gateway: NAME:PROFILE` runs: its version line

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        self.scenario = scenario
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = bus
        self.images: dict[str, str] = {}
        self.logs: dict[str, str] = {}
        self.capture_names: dict[str, str] = {}
        self.captured: Captured | None = None
        self.ledger: Ledger | None = None  # what was created, written before creating it
        self.proxies: ToxiproxyClient | None = None
        self.tls: RunTls | None = None  # a scenario with TLS: its CA and folders (Docker)
        self.t0 = time.time()  # the session moves the watchdog's clock to its own
        self.watchdog = Watchdog(lambda: self.t0)
        self.resources = contextlib.ExitStack()
        self._closed = False
        self._unwound = False

    # -- the context manager ------------------------------------------------------------
    def __enter__(self) -> BaseStack:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Nothing to bring up."""

    def close(self) -> None:
        """Everything registered on the ExitStack, newest first; once only."""
        if self._closed:
            return
        self._closed = True
        self.resources.close()

    # -- what the phase loop asks -------------------------------------------------------
    def service_url(self, name: str) -> str:
        raise EnvironmentProblem(f"this environment does not run service {name}")

    def load_target(self) -> str:
        return self.service_url(self.scenario.load.target)

    def load_tls(self) -> dict[str, str] | None:
        return self.tls.load(self.scenario.load.target) if self.tls is not None else None

    def fault_context(self) -> FaultContext:
        raise EnvironmentProblem("this environment applies no faults")

    def moved(self, services: set[str]) -> None:
        """Nothing moves unless a stack says so."""

    @property
    def proxy_part(self) -> str:
        return f"the Toxiproxy server ({self.provider})"

    def proxy_dead(self) -> bool:
        failure = self.watchdog.failure
        return failure is not None and failure.part == self.proxy_part

    def proxy_api_url(self, proxy: str | None = None) -> str | None:
        if self.proxies is None:
            return None
        if proxy is None:
            return self.proxies.base_url
        return f"{self.proxies.base_url}/proxies/{self.proxies.server_name(proxy)}"

    # -- helpers for subclasses ---------------------------------------------------------
    def open_ledger(self, folder: Path | None = None) -> Ledger:
        """The ledger first: every later resource is written down before it exists.
        Its close (and the proxies' client close) runs last."""
        self.ledger = Ledger(self.run_id, self.scenario.name, folder=folder)
        self.resources.callback(self._close_ledger)
        return self.ledger

    def _close_ledger(self) -> None:
        from chaos.observe.events import LeftForSweep

        try:
            if self.ledger is not None:
                if not self._unwound:
                    self.unwind_ledger()  # nothing else walked it (a Locust process, toxics)
                if not self.ledger.close():
                    left = tuple(str(e) for e in self.ledger.outstanding())
                    self.bus.emit(LeftForSweep(entries=left))
        finally:
            if self.proxies is not None:
                self.proxies.close()

    def removers(self) -> dict[str, Remover]:
        """How each kind of ledger entry is removed; a stack adds its own kinds."""
        proxies = None if self.proxy_dead() else self.proxies

        def toxic(entry: Entry) -> None:
            if proxies is not None:
                with contextlib.suppress(Exception):  # gone with the proxy server anyway
                    proxies.remove_toxic(str(entry.info.get("proxy")), str(entry.info.get("toxic")))

        external = proxy_remover(self.run_id)["proxy"]

        def proxy(entry: Entry) -> None:
            if entry.info.get("external"):
                external(entry)  # on the user's server: must go, or doctor has to do it
            elif proxies is not None:
                with contextlib.suppress(Exception):  # gone with the proxy server anyway
                    proxies.delete_proxy(entry.name)

        return {"toxic": toxic, "proxy": proxy, **process_remover(self.run_id)}

    def unwind_ledger(self) -> list[str]:
        """Walk the ledger newest first (what could not be removed, as problems)."""
        if self.ledger is None:
            return []
        self._unwound = True
        return self.ledger.unwind(self.removers())
