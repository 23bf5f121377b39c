"""File -> validated Scenario, or one ScenarioError naming file, line and key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from chaos.errors import ScenarioError
from chaos.scenario.model import ContainerFault, Scenario, ToxicFault
from chaos.scenario.yaml_marks import MarkedDocument, load_marked

_REF = re.compile(r"\$\{(proxy|service)\.([a-z][a-z0-9_-]*)\}")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override (``--set a.b=c``), validate and cross-check a scenario file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the file: {exc}", file) from None
    doc = load_marked(text, file)
    if not isinstance(doc.data, dict):
        raise ScenarioError("expected a mapping with name, services, load, phases", file, 1)
    for item in overrides or []:
        apply_override(doc, item)
    scenario = validate(doc)
    cross_check(scenario, doc)
    return scenario


def apply_override(doc: MarkedDocument, item: str) -> None:
    """Set one value: ``services.gateway.env.GATEWAY_RETRIES=off`` (value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"--set expects KEY.PATH=VALUE, got {item!r}", "--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node: Any = doc.data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"no list item {part!r} in {'.'.join(parts[:i]) or 'the file'}",
                                    "--set", None, key)
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node:
                node[part] = {}
                node = node[part]
            else:
                node = node[part]
        else:
            raise ScenarioError(f"cannot set below a plain value at {'.'.join(parts[:i])}",
                                "--set", None, key)


def validate(doc: MarkedDocument) -> Scenario:
    try:
        return Scenario.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        path = _data_path(doc.data, first["loc"])
        message = _message(first)
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
            for kind, ref in _REF.findall(str(value)):
                known = scenario.proxies if kind == "proxy" else services
                if ref not in known:
                    raise doc.error(("services", name, "env", key), _unknown(kind, ref, known))
    _check_phases(scenario, doc)
    _check_assertions(scenario, doc)


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


def _check_assertions(scenario: Scenario, doc: MarkedDocument) -> None:
    names = {p.name for p in scenario.phases}
    for i, assertion in enumerate(scenario.assertions):
        if assertion.phase is not None and assertion.phase not in names:
            raise doc.error(("assertions", i, "phase"), _unknown("phase", assertion.phase, names))
        if assertion.breaker is not None and scenario.probes.breaker is None:
            raise doc.error(("assertions", i, "breaker"),
                            "breaker assertions need probes.breaker (where to read the state)")
    probe = scenario.probes.breaker
    if probe is not None and probe.service not in scenario.services:
        raise doc.error(("probes", "breaker", "service"),
                        _unknown("service", probe.service, scenario.services))


def _unknown(kind: str, name: str, known: Any) -> str:
    options = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {name!r} (known: {options})"
