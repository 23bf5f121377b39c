"""The loader's cross-checks by family: arrivals, phases, net faults, rate limits,
assertions (references and dependencies are in references.py, request scoping and fault
timing in scoping.py)."""

from __future__ import annotations

from typing import Any

from chaos.scenario.llm_bounds import check_llm_bounds
from chaos.scenario.model import ContainerFault, LlmFault, NetFault, Scenario, ToxicFault
from chaos.scenario.references import (
    check_dependencies,
    check_references,
    check_witness,
    unknown,
)
from chaos.scenario.scoping import check_scoping
from chaos.scenario.tls_checks import check_tls
from chaos.scenario.yaml_marks import MarkedDocument

# Assertion bounds only the upstream witness can judge (chaos.verdict.witness_checks)
WITNESS_BOUNDS = ("attempts_per_request", "upstream_timeout", "retries_non_idempotent", "shed")


def cross_check(scenario: Scenario, doc: MarkedDocument) -> None:
    """References between sections: names that must exist elsewhere in the file."""
    check_references(scenario, doc)
    _check_arrivals(scenario, doc)
    _check_request_id(scenario, doc)
    check_dependencies(scenario, doc)
    _check_phases(scenario, doc)
    _check_assertions(scenario, doc)
    check_scoping(scenario, doc)  # request-scoped bounds, fault at/for
    check_witness(scenario, doc)  # the witness's proxies, journal, tap
    check_tls(scenario, doc)  # tls faults name a TLS service; only started services get certs


def _check_arrivals(scenario: Scenario, doc: MarkedDocument) -> None:
    """Open arrivals are a rate on a clock: `arrival: open` needs one, and max_in_flight
    bounds open arrivals only."""
    load = scenario.load
    if load.arrival == "open" and load.rate is None:
        raise doc.error(("load", "arrival"), "open arrivals need a rate (requests/s): set "
                        "load.rate, or leave arrival out for users that pause `wait`")
    if load.max_in_flight is not None and (load.rate is None or load.arrival == "closed"):
        raise doc.error(("load", "max_in_flight"), "max_in_flight bounds open arrivals only "
                        "(load.rate with arrival open); closed-loop users are load.users")


def _check_request_id(scenario: Scenario, doc: MarkedDocument) -> None:
    """load.request_id.body_field is set inside each request's JSON body: every step of the
    path must be an object (or absent, then created), never a value the id would replace."""
    field = scenario.load.request_id.body_field
    if field is None or not scenario.load.request_id.enabled:
        return
    for i, request in enumerate(scenario.load.requests):
        if request.json_body is None:
            continue  # no JSON body: the header alone carries the id
        at: tuple[str | int, ...] = ("load", "requests", i, "json")
        node: Any = request.json_body
        keys = field.split(".")
        for depth, key in enumerate(keys):
            if not isinstance(node, dict):
                what = "the JSON body" if depth == 0 else ".".join(keys[:depth])
                raise doc.error(at, f"load.request_id.body_field {field!r} needs {what} to be "
                                f"an object, not {_json_kind(node)}")
            if depth == len(keys) - 1 and isinstance(node.get(key), (dict, list)):
                raise doc.error((*at, key), f"load.request_id.body_field {field!r} would "
                                "replace this object with the request id: name a new key")
            if key not in node:
                break  # created when the request is sent
            at = (*at, key)
            node = node[key]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "null"


def _check_phases(scenario: Scenario, doc: MarkedDocument) -> None:
    seen: set[str] = set()
    for i, phase in enumerate(scenario.phases):
        if phase.name in seen:
            raise doc.error(("phases", i, "name"), f"phase name {phase.name!r} is used twice")
        seen.add(phase.name)
        if phase.duration <= 0:
            raise doc.error(("phases", i, "duration"), "a phase must last longer than 0s")
        for j, fault in enumerate(phase.faults):
            if isinstance(fault, ToxicFault) and fault.proxy not in scenario.proxies:
                raise doc.error(("phases", i, "faults", j, "proxy"),
                                unknown("proxy", fault.proxy, scenario.proxies))
            if isinstance(fault, ContainerFault) and fault.container not in scenario.services:
                raise doc.error(("phases", i, "faults", j, "container"),
                                unknown("service", fault.container, scenario.services))
            if isinstance(fault, NetFault):
                _check_net_fault(scenario, doc, fault, ("phases", i, "faults", j))
            if isinstance(fault, LlmFault) and (
                    fault.service not in scenario.services
                    or scenario.services[fault.service].llm is None):
                llm = {n for n, s in scenario.services.items() if s.llm is not None}
                raise doc.error(("phases", i, "faults", j, "service"),
                                unknown("LLM provider (a service with llm:)", fault.service, llm))
        _check_rate_limits(doc, phase.faults, i)


PROXY_CONTAINER = "toxiproxy"  # the harness's own container, a valid peer when proxies exist


def _check_net_fault(scenario: Scenario, doc: MarkedDocument, fault: NetFault,
                     at: tuple[str | int, ...]) -> None:
    """Combinations one model cannot express: each kind takes its own keys."""
    if fault.service not in scenario.services:
        raise doc.error((*at, "service"), unknown("service", fault.service, scenario.services))
    peers = set(scenario.services) | ({PROXY_CONTAINER} if scenario.proxies else set())
    if fault.peer is not None:
        if fault.peer not in peers:
            raise doc.error((*at, "peer"), unknown("service", fault.peer, peers))
        if fault.peer == fault.service:
            raise doc.error((*at, "peer"), "the peer must be another service")
    if fault.net == "packet_loss" and fault.probability is None:
        raise doc.error((*at, "net"), "packet_loss needs probability (0 < p <= 1)")
    if fault.net == "rate_limit":
        if fault.rate is None:
            raise doc.error((*at, "net"), "rate_limit needs rate, e.g. rate: 1mbit")
        if fault.probability is not None:
            raise doc.error((*at, "probability"), "rate_limit takes no probability: it shapes "
                            "every matching packet (packet_loss drops a random share)")
    elif fault.rate is not None:
        raise doc.error((*at, "rate"), f"{fault.net} takes no rate (only rate_limit does)")


_SHAPED_SIDES = {"egress": ["egress"], "ingress": ["ingress"], "both": ["egress", "ingress"]}


def _check_rate_limits(doc: MarkedDocument, faults: list[Any], phase: int) -> None:
    """A device holds one root qdisc and one ingress qdisc: one rate_limit per service and
    direction in a phase (scope one fault with peer/port, or run them in separate phases)."""
    seen: dict[tuple[str, str], int] = {}
    for j, fault in enumerate(faults):
        if not isinstance(fault, NetFault) or fault.net != "rate_limit":
            continue
        for side in _SHAPED_SIDES[fault.flow]:
            if (fault.service, side) in seen:
                first = seen[(fault.service, side)]
                raise doc.error(("phases", phase, "faults", j, "service"),
                                f"{fault.service} already has a rate_limit on {side} in this "
                                f"phase (faults[{first}]); an interface holds one {side} "
                                "qdisc: scope one fault with peer/port, or use two phases")
            seen[(fault.service, side)] = j


def _check_assertions(scenario: Scenario, doc: MarkedDocument) -> None:
    check_llm_bounds(scenario, doc)  # served_by's provider names, the journals' bounds
    names = {p.name for p in scenario.phases}
    for i, assertion in enumerate(scenario.assertions):
        if assertion.phase is not None and assertion.phase not in names:
            raise doc.error(("assertions", i, "phase"), unknown("phase", assertion.phase, names))
        # Without probes the upstream witness infers them; with it off, nothing can
        witness_off = scenario.witness.use == "off"
        if assertion.breaker is not None and scenario.probes.breaker is None and witness_off:
            raise doc.error(("assertions", i, "breaker"),
                            "breaker assertions need probes.breaker (where to read the state) "
                            "or the upstream witness (witness.use is off)")
        for key in ("breaker", "recovers_within"):
            if getattr(assertion, key) is not None and assertion.phase is None:
                raise doc.error(("assertions", i, key), f"{key} is measured from a phase start: "
                                "give the assertion a phase")
        if (assertion.retry_amplification is not None and witness_off
                and scenario.probes.upstream_requests is None):
            raise doc.error(("assertions", i, "retry_amplification"),
                            "retry_amplification needs probes.upstream_requests (a request "
                            "counter) or the upstream witness (witness.use is off)")
        for key in WITNESS_BOUNDS:
            if getattr(assertion, key) is not None and witness_off:
                raise doc.error(("assertions", i, key), f"{key} is read from the upstream "
                                "witness, and witness.use is off")
        for key in assertion.rst_from or {}:
            problem = _rst_problem(key, scenario)
            if problem:
                raise doc.error(("assertions", i, "rst_from", key), problem)
    spec = scenario.capture_spec()
    for i, name in enumerate(spec.services or [] if spec is not None else []):
        if name not in scenario.services and name != "toxiproxy":
            raise doc.error(("capture", "services", i),
                            unknown("service", name, [*scenario.services, "toxiproxy"]))
    for name in ("breaker", "upstream_requests"):
        probe = getattr(scenario.probes, name)
        if probe is not None and probe.service not in scenario.services:
            raise doc.error(("probes", name, "service"),
                            unknown("service", probe.service, scenario.services))


RST_PEERS = ("client",)  # the load generator, as packet captures name it


def _rst_problem(key: str, scenario: Scenario) -> str | None:
    """``rst_from: {gateway: 0}`` or ``{gateway->client: 0}``: both ends are known names."""
    known = {*scenario.services, *RST_PEERS, *(("proxy",) if scenario.proxies else ())}
    for end in key.split("->", 1):
        if end.strip() not in known:
            return unknown("service", end.strip(), known) + "; write SENDER or SENDER->RECEIVER"
    return None
