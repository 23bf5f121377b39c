"""Container actions: kill (SIGKILL), stop, start, restart, pause, unpause."""

from __future__ import annotations

import docker.errors
from docker.models.containers import Container

from chaos.errors import FaultNotApplied
from chaos.faults.base import FaultContext, Injected
from chaos.scenario.model import UNDO_ACTIONS, ContainerFault


def inject_container_action(fault: ContainerFault, ctx: FaultContext, index: int) -> Injected:
    """One-shot: the action happens at the phase start (or `at`) and is not undone at its
    end; with `for`, kill and stop are undone by start, pause by unpause, when it is over.

    A paused container is unpaused at teardown anyway, because removal is forced.
    """
    container = ctx.env.container(fault.container)
    try:
        _act(container, fault.action)
    except docker.errors.APIError as exc:
        reason = exc.explanation or str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise FaultNotApplied(fault.describe(), str(reason)) from None
    if fault.for_ is None:
        return Injected(fault.describe())
    return Injected(fault.describe(), undo=lambda: _act(container, UNDO_ACTIONS[fault.action]))


def _act(container: Container, action: str) -> None:
    """Docker's own call for each action name of the scenario language."""
    if action == "kill":
        container.kill(signal="SIGKILL")
    elif action == "stop":
        container.stop(timeout=2)
    elif action == "start":
        container.start()
    elif action == "restart":
        container.restart(timeout=2)
    elif action == "pause":
        container.pause()
    elif action == "unpause":
        container.unpause()
