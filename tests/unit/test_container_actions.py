"""A container action Docker refuses ends the run as an environment problem (exit 3)
naming the action and Docker's reason, never a docker-py traceback."""

from __future__ import annotations

import docker.errors
import pytest

from chaos.errors import FaultNotApplied
from chaos.faults.base import FaultContext
from chaos.faults.containers import inject_container_action
from chaos.scenario.model import ContainerFault


class _NotPaused:
    def unpause(self) -> None:
        raise docker.errors.APIError(
            "409 Client Error", explanation="Container abc is not paused")

    def kill(self, signal: str) -> None:
        self.killed = signal


class _Env:
    def __init__(self, container: object) -> None:
        self._container = container

    def container(self, name: str) -> object:
        assert name == "backend"
        return self._container


def _ctx(container: object) -> FaultContext:
    return FaultContext(proxies=None, env=_Env(container))  # type: ignore[arg-type]


def test_unpause_of_a_running_container_is_exit_3_with_dockers_reason() -> None:
    fault = ContainerFault(container="backend", action="unpause")
    with pytest.raises(FaultNotApplied) as info:
        inject_container_action(fault, _ctx(_NotPaused()), 0)
    assert info.value.exit_code == 3
    assert str(info.value) == ("fault could not be applied: unpause container backend: "
                               "Container abc is not paused")


def test_an_action_docker_accepts_is_applied() -> None:
    container = _NotPaused()
    injected = inject_container_action(ContainerFault(container="backend", action="kill"),
                                       _ctx(container), 0)
    assert container.killed == "SIGKILL"
    assert injected.description == "kill container backend"
