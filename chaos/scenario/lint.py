"""Warnings about legal but suspicious scenarios (``file:line: key: warning: ...``).

A warning never stops a run: the file means something, just probably not what its
author thinks. ``chaos validate`` and ``chaos run`` print them to stderr.
"""

from __future__ import annotations

from chaos.scenario.model import ContainerFault, Scenario
from chaos.scenario.yaml_marks import MarkedDocument

# Container actions after which the container serves nobody until a later start/unpause.
_TAKES_DOWN = {"kill": "kills", "stop": "stops", "restart": "restarts", "pause": "pauses"}


def target_fault_warnings(scenario: Scenario, doc: MarkedDocument) -> list[str]:
    """A container fault on the load target itself: clients then measure a dead target
    (refused connections, timeouts), not how a gateway handles a failure behind it."""
    target = scenario.load.target
    warnings: list[str] = []
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            if not isinstance(fault, ContainerFault) or fault.container != target:
                continue
            verb = _TAKES_DOWN.get(fault.action)
            if verb is None:
                continue
            where = doc.error(("phases", i, "faults", j, "container"), "").render()
            warnings.append(
                f"{where}warning: this fault {verb} {target}, the load target itself "
                f"(load.target): clients will see refused connections or timeouts from "
                f"{target}, not its handling of a failure behind it; fault a service behind "
                f"{target} unless taking {target} down is the point")
    return warnings
