"""The loopback stack: the reference apps as local processes, the proxies in-process.

The reference backend and gateway (docker/<name>/app.py) run as subprocesses on
127.0.0.1 and the project's embedded Toxiproxy-API server runs in this process,
carrying the scenario's proxies; everything else (the phase loop, the toxics and their
ledger, the Locust subprocess, the verdict, the reports, teardown on Ctrl-C) is the
real thing. This is the fast test layer: no Docker. Only toxic faults and `llm` faults
(the LLM provider, docker/llm-provider/app.py, runs here like the reference apps, its
script in CHAOS_LLM_SCRIPT) can be served this way; container and network faults (and
packet capture) need Docker and are refused before anything starts, naming the scenario key (exit 2).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import cast

from chaos.errors import EnvironmentProblem, ScenarioError
from chaos.faults.base import FaultContext
from chaos.observe.events import EventBus, ProxyCreated, ProxyServerChosen, ServiceReady
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.embedded import ServerThread
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.ledger import process_env
from chaos.runtime.paths import project_root
from chaos.scenario.llm_provider import SCRIPT_ENV, script_env
from chaos.scenario.loader import REFERENCE
from chaos.scenario.model import LlmFault, Scenario, ToxicFault
from chaos.scenario.tls_checks import uses_tls
from chaos.stack.base import BaseStack
from chaos.stack.processes import LOOPBACK, AppProcess, free_port, launch


class _NoDocker:
    """Stands in for the Docker environment in the fault context: only toxics are served."""

    def __getattr__(self, name: str) -> object:
        raise EnvironmentProblem("container and network faults need Docker; "
                                 "the loopback stack injects toxics only")


def refusals(scenario: Scenario) -> list[tuple[str, str]]:
    """(key, why) for each part of a scenario the loopback stack cannot serve."""
    found = [(f"phases[{i}].faults[{j}]", "this fault needs Docker; the loopback stack "
              "injects toxics and llm rules only")
             for i, phase in enumerate(scenario.phases)
             for j, fault in enumerate(phase.faults)
             if not isinstance(fault, ToxicFault | LlmFault)]
    for name, service in scenario.services.items():
        if service.image is not None or not app_script(scenario, name).is_file():
            found.append((f"services.{name}", "the loopback stack runs only the reference "
                          "apps (a build folder with app.py)"))
    if scenario.capture_spec() is not None:
        found.append(("capture", "packet capture needs Docker"))
    if uses_tls(scenario):
        found.append(("load.tls" if scenario.load.tls else "services", "TLS needs Docker (the "
                      "run's certificates are mounted into the services' containers)"))
    return found


def app_script(scenario: Scenario, name: str) -> Path:
    return project_root() / (scenario.services[name].build or "") / "app.py"


class LoopbackStack(BaseStack):
    """Local processes and an in-process proxy server, all on 127.0.0.1."""

    provider = "embedded (loopback, in-process)"
    has_tap = True

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        super().__init__(scenario, run_id, run_dir, bus)
        self.server: ServerThread | None = None
        self.ports: dict[str, int] = {}
        self.listen_ports: dict[str, int] = {}
        self.local: dict[str, AppProcess] = {}

    def open(self) -> None:
        for key, why in refusals(self.scenario)[:1]:
            raise ScenarioError(why, f"scenario {self.scenario.name}", key=key)
        # the ledger lives in the run folder: tests never touch the checkout's .chaos/runs
        ledger = self.open_ledger(folder=self.run_dir)
        self.ports = {name: free_port() for name in self.scenario.services}
        self.server = ServerThread(LOOPBACK, 0)
        self.server.start()
        self.resources.callback(self._stop_server)
        self.proxies = ToxiproxyClient(self.server.url)
        self.proxies.wait_ready(timeout=10)
        for name, spec in self.scenario.proxies.items():
            ledger.intend("proxy", name, api=self.server.url)
            info = self.proxies.create_proxy(name, f"{LOOPBACK}:0", self._local(spec.upstream))
            self.listen_ports[name] = info.port
            self.bus.emit(ProxyCreated(name=name, listen=info.listen, upstream=info.upstream,
                                       shown=False))
        self.bus.emit(ProxyServerChosen(server=f"embedded at {self.server.url}"))
        self.resources.callback(self._collect_logs)
        for name in self.scenario.start_order():
            self._start_local(name)

    def _local(self, address: str) -> str:
        """A proxy upstream such as backend:8080 becomes the local backend's address."""
        host, _, port = address.rpartition(":")
        if host in self.ports:
            return f"{LOOPBACK}:{self.ports[host]}"
        return address

    def _substitute(self, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "proxy":
                return f"http://{LOOPBACK}:{self.listen_ports[name]}"
            return self.service_url(name)

        return REFERENCE.sub(repl, value)

    def _start_local(self, name: str) -> None:
        assert self.ledger is not None
        service = self.scenario.services[name]
        env = {k: self._substitute(v) for k, v in service.env_strings().items()}
        if service.llm is not None:  # the LLM provider's script (docker/llm-provider)
            rid = self.scenario.load.request_id
            env[SCRIPT_ENV] = script_env(name, service.llm, rid.header, rid.body_field)
        script = app_script(self.scenario, name)
        started = time.monotonic()
        self.ledger.intend("process", name, script=str(script))
        app = launch(script, self.ports[name], self.run_dir / f"{name}.log",
                     {**env, **process_env(self.run_id)}, name)
        self.local[name] = app
        self.resources.callback(self._stop_local, name)
        self.ledger.update("process", name, pid=app.process.pid)
        self.images[name] = f"loopback: {script.relative_to(project_root())}"
        if not app.healthy(service.health or "/healthz"):
            raise EnvironmentProblem(f"{name} did not become healthy:\n{app.log()[-2000:]}")
        self.bus.emit(ServiceReady(service=name, image=self.images[name],
                                   seconds=time.monotonic() - started))

    def _stop_local(self, name: str) -> None:
        self.local[name].stop()
        if self.ledger is not None:
            self.ledger.removed("process", name)

    def _stop_server(self) -> None:
        """The toxics and proxies come off through its API before the server stops."""
        try:
            self.unwind_ledger()
        finally:
            assert self.server is not None
            self.server.stop()

    def _collect_logs(self) -> None:
        self.logs = {name: app.log() for name, app in self.local.items()}

    def service_url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}"

    def fault_context(self) -> FaultContext:
        assert self.proxies is not None
        return FaultContext(self.proxies, cast(RunEnvironment, _NoDocker()), self.service_url)
