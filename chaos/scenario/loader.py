"""File -> validated Scenario, or one ScenarioError naming file, line and key path."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chaos.errors import ScenarioError
from chaos.scenario.build_roots import allowed_roots, outside
from chaos.scenario.external import check_external
from chaos.scenario.lint import target_fault_warnings
from chaos.scenario.model import ContainerFault, NetFault, Scenario, ToxicFault
from chaos.scenario.overrides import apply_override
from chaos.scenario.scoping import check_scoping
from chaos.scenario.units import shown
from chaos.scenario.yaml_marks import MAX_FILE_BYTES, MarkedDocument, load_marked

REFERENCE = re.compile(r"\$\{(proxy|service)\.([a-z][a-z0-9_-]*)\}")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def load_scenario(path: str | Path, overrides: list[str] | None = None,
                  build_roots: Sequence[str | Path] = ()) -> Scenario:
    """Read, override (``--set a.b=c``), validate and cross-check a scenario file."""
    return check_scenario(path, overrides, build_roots)[0]


def check_scenario(path: str | Path, overrides: list[str] | None = None,
                   build_roots: Sequence[str | Path] = ()) -> tuple[Scenario, list[str]]:
    """load_scenario plus warnings (``file:line: key: warning: ...``) about legal but
    suspicious files, such as traffic that bypasses a proxy. ``build_roots``: folders
    (besides the scenario's own project) that ``build:`` may name (``--build-root``)."""
    file = str(path)
    doc = load_marked(read_text(Path(path), file), file)
    if not isinstance(doc.data, dict):
        raise ScenarioError("expected a mapping with name, services, load, phases", file, 1)
    for item in overrides or []:
        apply_override(doc, item)
    scenario = validate(doc)
    cross_check(scenario, doc)
    check_external(scenario, doc)
    check_builds(scenario, doc, allowed_roots(Path(path), build_roots))
    return scenario, bypass_warnings(scenario, doc) + target_fault_warnings(scenario, doc)


def read_text(path: Path, file: str) -> str:
    """The file's text; files above MAX_FILE_BYTES are refused before anything parses them."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc}", file) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"the file is larger than {MAX_FILE_BYTES >> 20} MB; scenario files "
                            "are small (refused before parsing)", file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"cannot read the file: not UTF-8 ({exc.reason})", file, line) from None


def check_builds(scenario: Scenario, doc: MarkedDocument, roots: list[Path]) -> None:
    """Every build: folder resolves inside an allowed root (symlinks resolved)."""
    for name, service in scenario.services.items():
        if service.build is None:
            continue
        folder = outside(service.build, roots)
        if folder is not None:
            allowed = ", ".join(str(root) for root in roots)
            raise doc.error(("services", name, "build"),
                            f"build folder {folder} is outside the allowed folders ({allowed}); "
                            "name another with --build-root DIR")


def scale_phases(scenario: Scenario, factor: float) -> Scenario:
    """``--duration-scale F``: every phase lasts F times as long.

    Phase durations change, and the `at`/`for` of their faults with them. Reaction-time
    bounds (``recovers_within``, breaker ``opens_within``/``closes_within``), latencies,
    toxic attributes and ``redraw_every`` describe the gateway, not the length of the
    test, so they stay as written.
    """
    if factor <= 0:
        raise ScenarioError(f"--duration-scale must be > 0, got {factor:g}", "--duration-scale")
    phases = [p.model_copy(update={"duration": p.duration * factor,
                                   "faults": [_scaled(f, factor) for f in p.faults]})
              for p in scenario.phases]
    return scenario.model_copy(update={"phases": phases})


def _scaled(fault: Any, factor: float) -> Any:
    """A fault's `at` and `for` are times inside its phase: they scale with it."""
    if fault.at is None and fault.for_ is None:
        return fault
    return fault.model_copy(update={"at": None if fault.at is None else fault.at * factor,
                                    "for_": None if fault.for_ is None else fault.for_ * factor})


def validate(doc: MarkedDocument) -> Scenario:
    try:
        return Scenario.model_validate(doc.data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        path = _data_path(doc.data, first["loc"])
        message = _message(first)
        if first["type"] == "extra_forbidden":
            message += _suggestion(str(first["loc"][-1]), first["loc"][:-1], errors)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise doc.error(path, message) from None


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's loc contains union member names; keep only steps that exist in the data."""
    path: list[str | int] = []
    node = data
    for step in loc:
        if isinstance(node, dict) and isinstance(step, str) and (step in node or step == loc[-1]):
            path.append(step)
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int):
            path.append(step)
            node = node[step] if step < len(node) else None
    return tuple(path)


def _suggestion(key: str, parent: tuple[Any, ...], errors: list[Any]) -> str:
    """'durration' next to a missing 'duration': say which key was probably meant."""
    missing = [str(e["loc"][-1]) for e in errors
               if e["type"] == "missing" and tuple(e["loc"][:-1]) == tuple(parent)]
    close = difflib.get_close_matches(key, missing, n=1, cutoff=0.6)
    return f" (did you mean {shown(close[0])}?)" if close else ""


def _message(error: Any) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def cross_check(scenario: Scenario, doc: MarkedDocument) -> None:
    """References between sections: names that must exist elsewhere in the file."""
    services = scenario.services
    for name in services:
        if not _SERVICE_NAME.match(name):
            raise doc.error(("services", name), "service names are lower-case letters, digits, -")
    if scenario.load.target not in services:
        raise doc.error(("load", "target"), _unknown("service", scenario.load.target, services))
    for name, proxy in scenario.proxies.items():
        upstream_service = proxy.upstream.split(":")[0]
        if upstream_service not in services:
            raise doc.error(("proxies", name, "upstream"),
                            _unknown("service", upstream_service, services))
        if not 1 <= int(proxy.upstream.split(":")[1]) <= 65535:
            raise doc.error(("proxies", name, "upstream"), "port out of range 1-65535")
    for name, service in services.items():
        for key, value in service.env.items():
            problem = _reference_problem(str(value), scenario)
            if problem:
                raise doc.error(("services", name, "env", key), problem)
    _check_arrivals(scenario, doc)
    _check_dependencies(scenario, doc)
    _check_phases(scenario, doc)
    _check_assertions(scenario, doc)
    check_scoping(scenario, doc)  # request-scoped bounds, fault at/for


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
            return _unknown(kind, ref, known)
    return None


def _known_refs(scenario: Scenario) -> str:
    proxies = ", ".join(sorted(scenario.proxies)) or "none"
    return f"proxies: {proxies}; services: {', '.join(sorted(scenario.services))}"


def _check_dependencies(scenario: Scenario, doc: MarkedDocument) -> None:
    """depends_on names existing services and has no cycle (start order must exist)."""
    services = scenario.services
    for name, service in services.items():
        for i, dep in enumerate(service.depends_on):
            if dep not in services:
                raise doc.error(("services", name, "depends_on", i), _unknown("service", dep, services))
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
                                _unknown("proxy", fault.proxy, scenario.proxies))
            if isinstance(fault, ContainerFault) and fault.container not in scenario.services:
                raise doc.error(("phases", i, "faults", j, "container"),
                                _unknown("service", fault.container, scenario.services))
            if isinstance(fault, NetFault):
                _check_net_fault(scenario, doc, fault, ("phases", i, "faults", j))
        _check_rate_limits(doc, phase.faults, i)


PROXY_CONTAINER = "toxiproxy"  # the harness's own container, a valid peer when proxies exist


def _check_net_fault(scenario: Scenario, doc: MarkedDocument, fault: NetFault,
                     at: tuple[str | int, ...]) -> None:
    """Combinations one model cannot express: each kind takes its own keys."""
    if fault.service not in scenario.services:
        raise doc.error((*at, "service"), _unknown("service", fault.service, scenario.services))
    peers = set(scenario.services) | ({PROXY_CONTAINER} if scenario.proxies else set())
    if fault.peer is not None:
        if fault.peer not in peers:
            raise doc.error((*at, "peer"), _unknown("service", fault.peer, peers))
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
    names = {p.name for p in scenario.phases}
    for i, assertion in enumerate(scenario.assertions):
        if assertion.phase is not None and assertion.phase not in names:
            raise doc.error(("assertions", i, "phase"), _unknown("phase", assertion.phase, names))
        if assertion.breaker is not None and scenario.probes.breaker is None:
            raise doc.error(("assertions", i, "breaker"),
                            "breaker assertions need probes.breaker (where to read the state)")
        for key in ("breaker", "recovers_within"):
            if getattr(assertion, key) is not None and assertion.phase is None:
                raise doc.error(("assertions", i, key), f"{key} is measured from a phase start: "
                                "give the assertion a phase")
        if assertion.retry_amplification is not None and scenario.probes.upstream_requests is None:
            raise doc.error(("assertions", i, "retry_amplification"),
                            "retry_amplification needs probes.upstream_requests (a request counter)")
        for key in assertion.rst_from or {}:
            problem = _rst_problem(key, scenario)
            if problem:
                raise doc.error(("assertions", i, "rst_from", key), problem)
    spec = scenario.capture_spec()
    for i, name in enumerate(spec.services or [] if spec is not None else []):
        if name not in scenario.services and name != "toxiproxy":
            raise doc.error(("capture", "services", i),
                            _unknown("service", name, [*scenario.services, "toxiproxy"]))
    for name in ("breaker", "upstream_requests"):
        probe = getattr(scenario.probes, name)
        if probe is not None and probe.service not in scenario.services:
            raise doc.error(("probes", name, "service"),
                            _unknown("service", probe.service, scenario.services))


RST_PEERS = ("client",)  # the load generator, as packet captures name it


def _rst_problem(key: str, scenario: Scenario) -> str | None:
    """``rst_from: {gateway: 0}`` or ``{gateway->client: 0}``: both ends are known names."""
    known = {*scenario.services, *RST_PEERS, *(("proxy",) if scenario.proxies else ())}
    for end in key.split("->", 1):
        if end.strip() not in known:
            return _unknown("service", end.strip(), known) + "; write SENDER or SENDER->RECEIVER"
    return None


def _unknown(kind: str, name: str, known: Any) -> str:
    options = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {shown(name)} (known: {options})"
