"""Scenarios whose services are already running (``url:``): the external stack's rules.

The harness starts nothing of such a system: it only reaches it. So every service is
given by url (a mix with build:/image: is refused), nothing can set their environment,
and what needs a container the harness owns (container actions, network faults in a
service's namespace, packet capture) is refused here, at validation, with file:line.
"""

from __future__ import annotations

from chaos.scenario.model import ContainerFault, NetFault, Scenario
from chaos.scenario.yaml_marks import MarkedDocument


def is_external(scenario: Scenario) -> bool:
    """Any service given by url: makes the whole scenario an external-stack one."""
    return any(s.url is not None for s in scenario.services.values())


def external_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, why) for each part the external stack cannot serve, in file order."""
    if not is_external(scenario):
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name, service in scenario.services.items():
        if service.url is None:
            found.append((("services", name), "mixes a service the harness starts with "
                          "services given by url:; give every service a url, or none"))
        elif service.env:
            found.append((("services", name, "env"), "a service given by url: is already "
                          "running; the harness cannot set its environment"))
        elif service.llm is not None and service.llm.model_fields_set - {"name"}:
            found.append((("services", name, "llm"), "a provider given by url: is already "
                          "running; the harness cannot hand it a script (keep only llm.name, "
                          "and install rules with an llm fault)"))
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            if isinstance(fault, ContainerFault):
                found.append((("phases", i, "faults", j, "container"),
                              f"container faults need a container the harness runs; "
                              f"{fault.container} is given by url: (use a toxic on a proxy)"))
            elif isinstance(fault, NetFault):
                found.append((("phases", i, "faults", j, "net"),
                              f"network faults need the network namespace of a container "
                              f"the harness runs; {fault.service} is given by url:"))
    if scenario.capture_spec() is not None:
        found.append((("capture",), "packet capture needs containers the harness runs"))
    return found


def check_external(scenario: Scenario, doc: MarkedDocument) -> None:
    for path, why in external_problems(scenario)[:1]:
        raise doc.error(path, why)
