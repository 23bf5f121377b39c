"""References between sections: names that must exist elsewhere in the file.

Service names, the load target, proxy upstreams, ``${proxy.NAME}`` and ``${service.NAME}``
in env values, ``depends_on`` (existing services, no cycle), and the warning about env
values that reach a proxied service directly.
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from typing import Any

from chaos.scenario.model import Scenario
from chaos.scenario.units import shown
from chaos.scenario.yaml_marks import MarkedDocument

REFERENCE = re.compile(r"\$\{(proxy|service)\.([a-z][a-z0-9_-]*)\}")
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check_references(scenario: Scenario, doc: MarkedDocument) -> None:
    """Service names, the load target, proxy upstreams and env references exist."""
    services = scenario.services
    for name in services:
        if not SERVICE_NAME.match(name):
            raise doc.error(("services", name), "service names are lower-case letters, digits, -")
    if scenario.load.target not in services:
        raise doc.error(("load", "target"), unknown("service", scenario.load.target, services))
    for name, proxy in scenario.proxies.items():
        upstream_service = proxy.upstream.split(":")[0]
        if upstream_service not in services:
            raise doc.error(("proxies", name, "upstream"),
                            unknown("service", upstream_service, services))
        if not 1 <= int(proxy.upstream.split(":")[1]) <= 65535:
            raise doc.error(("proxies", name, "upstream"), "port out of range 1-65535")
    for name, service in services.items():
        for key, value in service.env.items():
            problem = _reference_problem(str(value), scenario)
            if problem:
                raise doc.error(("services", name, "env", key), problem)


def _reference_problem(text: str, scenario: Scenario) -> str | None:
    """Every ``${`` in an env value starts a reference the run can substitute: a typo
    (``${proxy.BACKEND}``, ``${proxy.}``) would otherwise reach the container verbatim."""
    for start in (m.start() for m in re.finditer(r"\$\{", text)):
        match = REFERENCE.match(text, start)
        if match is None:
            end = text.find("}", start)
            written = text[start:end + 1] if 0 <= end - start < 60 else text[start:start + 60]
            return (f"{written!r} is not a reference: write ${{proxy.NAME}} or "
                    f"${{service.NAME}} with a lower-case name ({_known_refs(scenario)})")
        kind, ref = match.groups()
        known = scenario.proxies if kind == "proxy" else scenario.services
        if ref not in known:
            return unknown(kind, ref, known)
    return None


def _known_refs(scenario: Scenario) -> str:
    proxies = ", ".join(sorted(scenario.proxies)) or "none"
    return f"proxies: {proxies}; services: {', '.join(sorted(scenario.services))}"


def check_dependencies(scenario: Scenario, doc: MarkedDocument) -> None:
    """depends_on names existing services and has no cycle (start order must exist)."""
    services = scenario.services
    for name, service in services.items():
        for i, dep in enumerate(service.depends_on):
            if dep not in services:
                raise doc.error(("services", name, "depends_on", i), unknown("service", dep, services))
            if dep == name:
                raise doc.error(("services", name, "depends_on", i), "a service cannot depend on itself")
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name, service in services.items():
        sorter.add(name, *service.depends_on)
    try:
        sorter.prepare()  # iterative: a chain of 10,000 services is no recursion
    except CycleError as exc:
        cycle = list(reversed(exc.args[1]))  # graphlib lists dependencies first
        name, dep = cycle[0], cycle[1]
        i = services[name].depends_on.index(dep)
        raise doc.error(("services", name, "depends_on", i),
                        "depends_on has a cycle: " + " -> ".join(cycle)) from None


def bypass_warnings(scenario: Scenario, doc: MarkedDocument) -> list[str]:
    """Env values that reach a proxied service directly, so its faults would miss them."""
    upstreams: dict[str, str] = {}  # "backend:8080" -> proxy name
    for name, proxy in scenario.proxies.items():
        upstreams.setdefault(proxy.upstream, name)
    warnings: list[str] = []
    for service_name, service in scenario.services.items():
        for key, value in service.env.items():
            text = str(value)
            for ref_kind, ref in REFERENCE.findall(text):
                if ref_kind == "service" and ref in scenario.services:
                    address = f"{ref}:{scenario.services[ref].port}"
                    if address in upstreams:
                        text += f" {address}"
            for address, proxy_name in upstreams.items():
                if re.search(rf"(?<![\w.-]){re.escape(address)}(?!\d)", text):
                    where = doc.error(("services", service_name, "env", key), "").render()
                    warnings.append(
                        f"{where}warning: {service_name} talks to {address} directly, bypassing "
                        f"proxy {proxy_name!r}; faults on that proxy will not reach this traffic "
                        f"(use ${{proxy.{proxy_name}}})")
    return warnings


def unknown(kind: str, name: str, known: Any) -> str:
    options = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {shown(name)} (known: {options})"


def witness_proxies(scenario: Scenario) -> list[str]:
    """The proxies the witness taps: those named, else every proxy in front of an upstream
    (whose upstream is not the load target's service: that one carries the clients)."""
    named = scenario.witness.proxies
    if named is not None:
        return list(named)
    target = scenario.load.target
    return [name for name, proxy in scenario.proxies.items()
            if proxy.upstream.split(":")[0] != target]


def check_witness(scenario: Scenario, doc: MarkedDocument) -> None:
    """witness: the proxies and the journal's service exist; tap and journal can be served."""
    witness = scenario.witness
    for i, name in enumerate(witness.proxies or []):
        if name not in scenario.proxies:
            raise doc.error(("witness", "proxies", i), unknown("proxy", name, scenario.proxies))
        if name in (witness.proxies or [])[:i]:
            raise doc.error(("witness", "proxies", i), f"proxy {shown(name)} is named twice")
    journal = witness.journal
    if journal is not None and journal.service not in scenario.services:
        raise doc.error(("witness", "journal", "service"),
                        unknown("service", journal.service, scenario.services))
    if witness.use == "journal" and journal is None:
        raise doc.error(("witness", "use"), "use: journal needs witness.journal "
                        "({service: NAME, path: /journal}): the service that journals requests")
    if witness.use == "tap" and not witness_proxies(scenario):
        raise doc.error(("witness", "use"), "use: tap needs a proxy in front of an upstream "
                        "(no proxy's upstream is other than the load target; name them in "
                        "witness.proxies)")
