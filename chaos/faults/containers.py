"""Container actions: kill (SIGKILL), stop, start, restart, pause, unpause."""

from __future__ import annotations

from chaos.faults.base import FaultContext, Injected
from chaos.scenario.model import ContainerFault


def inject_container_action(fault: ContainerFault, ctx: FaultContext, index: int) -> Injected:
    """One-shot: the action happens at the phase start and is not undone at its end.

    A paused container is unpaused at teardown anyway, because removal is forced.
    """
    container = ctx.env.container(fault.container)
    action = fault.action
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
    return Injected(fault.describe())
