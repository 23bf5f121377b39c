"""Maps each fault of the scenario language to the module that injects it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaos.faults.base import FaultContext, Injected
from chaos.faults.containers import inject_container_action
from chaos.faults.llm import inject_llm_rules
from chaos.faults.netns import inject_net_fault
from chaos.faults.tls import inject_tls
from chaos.faults.toxics import inject_toxic
from chaos.scenario.model import ContainerFault, LlmFault, NetFault, TlsFault, ToxicFault

INJECTORS: dict[type, Callable[[Any, FaultContext, int], Injected]] = {
    ToxicFault: inject_toxic,
    ContainerFault: inject_container_action,
    NetFault: inject_net_fault,
    LlmFault: inject_llm_rules,
    TlsFault: inject_tls,
}


def inject(fault: ToxicFault | ContainerFault | NetFault | LlmFault | TlsFault, ctx: FaultContext,
           index: int) -> Injected:
    return INJECTORS[type(fault)](fault, ctx, index)
