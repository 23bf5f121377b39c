"""The external stack: services the user already runs, given by ``url:``.

The harness starts none of them; it waits until each answers its health path, puts the
scenario's proxies in front of the upstreams (on the user's Toxiproxy at TOXIPROXY_URL,
under run-unique names, or on the project's embedded server started in this process on
127.0.0.1) and sends the load from this machine. The user points the gateway's upstream
at the proxy (``proxies.<name>.listen``). Only toxics apply: container and network
faults were refused at validation (chaos.scenario.external). Teardown removes what the
run made (its proxies and toxics, the Locust process), never the user's services.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import requests

from chaos.errors import EnvironmentProblem, ProxyError
from chaos.faults.base import FaultContext
from chaos.observe.events import EventBus, ProxyCreated, ProxyServerChosen, ServiceReady
from chaos.observe.watchdog import url_check
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.embedded import ServerThread
from chaos.proxy.external import proxy_name
from chaos.proxy.provider import ProviderChoice, refuse_http_toxics
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.health import ready_timeout
from chaos.scenario.model import Scenario
from chaos.stack.base import BaseStack
from chaos.stack.loopback import _NoDocker

LOOPBACK = "127.0.0.1"


class ExternalStack(BaseStack):
    """Running services reached by url; the run's own proxies in front of their upstreams."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        super().__init__(scenario, run_id, run_dir, bus)
        self.server: ServerThread | None = None
        self.api = (os.environ.get("TOXIPROXY_URL") or "").strip()
        self.ready_timeout = ready_timeout()
        self.listen: dict[str, str] = {}  # proxy -> where it listens

    def open(self) -> None:
        self.open_ledger()
        self._start_proxies()
        for name in self.scenario.start_order():
            self._wait_ready(name)

    def _start_proxies(self) -> None:
        if self.api:
            names = {name: proxy_name(self.run_id, name) for name in self.scenario.proxies}
            self.proxies = ToxiproxyClient(self.api, names=names)
            self.provider = f"TOXIPROXY_URL {self.api}"
            refuse_http_toxics(self.scenario, ProviderChoice(self.provider, None, None, kind="url",
                                                               url=self.api))
            self.has_tap = None  # the user's server: its attempts endpoint tells
            self.watchdog.watch("toxiproxy", url_check(self.proxy_part, self.api))
        else:
            self.server = ServerThread(LOOPBACK, 0)
            self.server.start()
            self.resources.callback(self._stop_server)
            self.proxies = ToxiproxyClient(self.server.url)
            self.provider = f"embedded (in-process, {self.server.url})"
            self.has_tap = True
        api = self.proxies.base_url
        try:
            self.proxies.wait_ready(timeout=10)
        except ProxyError as exc:
            raise EnvironmentProblem(f"the Toxiproxy server at {api} did not answer: {exc}") from exc
        self.bus.emit(ProxyServerChosen(server=self.provider))
        for name, spec in self.scenario.proxies.items():
            assert self.ledger is not None  # opened first
            self.ledger.intend("proxy", self.proxies.server_name(name), api=api,
                               external=bool(self.api), proxy=name)
            info = self.proxies.create_proxy(name, spec.listen or f"{LOOPBACK}:0",
                                             self._upstream(spec.upstream))
            self.listen[name] = info.listen
            self.bus.emit(ProxyCreated(name=name, listen=info.listen,
                                       upstream=self._upstream(spec.upstream),
                                       server_name=self.proxies.server_name(name)))

    def _upstream(self, address: str) -> str:
        """``backend:8080``: the host of the backend's url, on that port."""
        service, _, port = address.rpartition(":")
        url = self.scenario.services[service].url if service in self.scenario.services else None
        host = urlsplit(url).hostname if url else None
        return f"{host}:{port}" if host else address

    def _wait_ready(self, name: str) -> None:
        url = self.service_url(name)
        path = self.scenario.services[name].health
        started = time.monotonic()
        deadline = started + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if path is None:
                break
            try:
                status = requests.get(url + path, timeout=2).status_code
                if status < 400:
                    break
                last = f"HTTP {status}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        else:
            raise EnvironmentProblem(f"service {name} at {url} did not answer {path} within "
                                     f"{self.ready_timeout:g}s ({last}); it is given by url: "
                                     "the harness does not start it")
        self.images[name] = f"external: {url}"
        self.bus.emit(ServiceReady(service=name, image=self.images[name],
                                   seconds=time.monotonic() - started))

    def _stop_server(self) -> None:
        """The toxics and proxies come off through its API before the server stops."""
        try:
            self.unwind_ledger()
        finally:
            assert self.server is not None
            with contextlib.suppress(Exception):
                self.server.stop()

    def service_url(self, name: str) -> str:
        url = self.scenario.services[name].url or ""
        return url.rstrip("/")

    def fault_context(self) -> FaultContext:
        assert self.proxies is not None
        return FaultContext(self.proxies, cast(RunEnvironment, _NoDocker()), self.service_url)
