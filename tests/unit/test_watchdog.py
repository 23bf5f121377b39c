"""The watchdog's words for how a harness part died, and its checks, without Docker."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from chaos.errors import PartFailed
from chaos.observe.watchdog import (
    Watchdog,
    container_check,
    container_death,
    process_check,
    process_death,
    url_check,
)
from tests.fixtures.loopback import free_port


def test_how_a_process_died() -> None:
    assert process_death(-9) == "killed by SIGKILL"
    assert process_death(-15) == "killed by SIGTERM"
    assert process_death(2) == "exited with code 2"


def test_how_a_container_died() -> None:
    assert container_death({"ExitCode": 137}) == "exited with code 137 (killed by SIGKILL)"
    assert "OOM-killed" in container_death({"ExitCode": 137, "OOMKilled": True})
    assert container_death({"ExitCode": 1}) == "exited with code 1"


class _Container:
    def __init__(self, name: str, status: str, code: int = 0,
                 labels: dict[str, str] | None = None) -> None:
        self.name = name
        self.labels = labels or {}
        self.attrs: dict[str, Any] = {"State": {
            "Status": status, "ExitCode": code, "OOMKilled": False,
            "FinishedAt": "2020-01-01T00:00:00.123456789Z" if status == "exited" else ""}}

    def logs(self, tail: int) -> bytes:
        return b"last words"


class _Client:
    def __init__(self, *containers: _Container) -> None:
        self.containers = self
        self.found = list(containers)

    def list(self, **kwargs: Any) -> list[_Container]:
        return self.found


def test_a_dead_proxy_container_is_named_with_its_exit() -> None:
    client = _Client(_Container("run-toxiproxy", "exited", 137), _Container("run-backend", "exited"))
    dog = Watchdog(time.time, interval=0)
    dog.watch("containers", container_check(client, "r", lambda: {"run-toxiproxy": "the proxy"}))
    with pytest.raises(PartFailed, match=r"the proxy: container run-toxiproxy exited with code "
                                         r"137 \(killed by SIGKILL\)") as caught:
        dog.check()
    assert "last words" in str(caught.value)
    assert dog.failure is not None and dog.failure.affected_from <= dog.failure.affected_to


def test_a_removed_sidecar_is_a_failure_and_a_running_one_is_not() -> None:
    client = _Client(_Container("run-capture-gateway", "running"))
    parts = {"run-capture-gateway": "capture"}
    dog = Watchdog(time.time, interval=0)
    dog.watch("containers", container_check(client, "r", lambda: parts))
    dog.check()
    client.found.clear()
    with pytest.raises(PartFailed, match="capture: container run-capture-gateway was removed"):
        dog.check()


def test_a_process_that_exits_is_found_and_one_miss_of_a_url_is_not() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(5)"])
    proc.wait()
    dog = Watchdog(time.time, interval=0)
    check = url_check("server", f"http://127.0.0.1:{free_port()}", timeout=0.5)
    assert check() is None  # one miss is not yet a death
    assert check() is not None
    dog.watch("p", process_check("load", proc, lambda: "tail"))
    with pytest.raises(PartFailed, match="load: exited with code 5"):
        dog.check()


def test_a_network_fault_sidecar_is_watched_while_it_exists() -> None:
    from chaos.stack.docker import netfault_sidecar

    labels = {"gateway-chaos.netfault.chain": "CHAOS-1", "gateway-chaos.netfault.target": "backend"}
    client = _Client(_Container("run-netfault-backend-1", "running", labels=labels))
    dog = Watchdog(time.time, interval=0)
    dog.watch("containers", container_check(client, "r", dict, netfault_sidecar))
    dog.check()
    client.found.clear()  # its fault was removed, and the sidecar with it: fine
    dog.check()
    client.found.append(_Container("run-netfault-backend-2", "exited", 137, labels))
    with pytest.raises(PartFailed, match="the network-fault sidecar on backend: container "
                                         "run-netfault-backend-2 exited with code 137"):
        dog.check()
