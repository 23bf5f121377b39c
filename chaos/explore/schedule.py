"""A drawn schedule becomes an ordinary Scenario (and an ordinary YAML file).

Phases: `baseline` (no faults), one phase per fault window (`fault`, `fault-2`, ...),
then `recovery`, where container actions are undone (start after kill/stop, unpause
after pause). Services, proxies, load and probes are the original scenario's.

Assertions are mapped onto the new phases:
- whole-run assertions (no phase) are kept;
- assertions on the original first phase go to `baseline`, those on the original
  last phase to `recovery` (its own faults, such as `start`, are restores);
- assertions on original phases that held faults go to every fault window, without
  the bounds that only make sense for the original fault: lower bounds on counts
  (`graceful_errors: "> 0"`, `ok_after_retry: "> 0"`, ...) and breaker timing (a
  mild drawn fault need not trip the breaker). Invariants stay: resets, latencies,
  success rates, truncation.
- assertions on other original phases are dropped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from chaos import outcomes as o
from chaos.explore.strategies import DrawnFault, Schedule
from chaos.scenario.model import (
    Assertion,
    ByteToxic,
    ContainerFault,
    Fault,
    Phase,
    Scenario,
    ToxicFault,
)
from chaos.scenario.units import Comparison

_COUNT_KINDS = ("resets", o.REFUSED, "timeouts", o.CLOSED, "graceful_errors", o.OK_AFTER_RETRY,
                o.TRUNCATED)
_RESTORE = {"kill": "start", "stop": "start", "pause": "unpause"}


def window_names(count: int) -> list[str]:
    return ["fault" if i == 0 else f"fault-{i + 1}" for i in range(count)]


def _fault(drawn: DrawnFault) -> ToxicFault | ContainerFault:
    if drawn.is_container:
        return _container(drawn.target, drawn.kind)
    toxic = ByteToxic.model_validate({"type": drawn.kind, "stream": drawn.stream,
                                  "toxicity": drawn.toxicity,
                                  "attributes": dict(drawn.attributes)})
    return ToxicFault.model_validate({"proxy": drawn.target, "toxic": toxic})


def _container(service: str, action: str) -> ContainerFault:
    return ContainerFault.model_validate({"container": service, "action": action})


def build_phases(schedule: Schedule, phase_duration: float) -> list[Phase]:
    """Windows in order; a container stays down across windows until it is restored."""
    phases = [Phase(name="baseline", duration=phase_duration)]
    down: dict[str, str] = {}  # service -> the action that took it down
    for name, window in zip(window_names(len(schedule.windows)), schedule.windows, strict=True):
        faults: list[Fault] = []
        acting = {f.target for f in window.faults if f.is_container}
        for service in sorted(set(down) - acting):  # restore what this window leaves alone
            faults.append(_container(service, _RESTORE[down.pop(service)]))
        for drawn in window.faults:
            if drawn.is_container:
                if drawn.target in down:
                    continue  # already down: acting again adds nothing
                if drawn.kind in _RESTORE:
                    down[drawn.target] = drawn.kind
            faults.append(_fault(drawn))
        phases.append(Phase(name=name, duration=window.duration, faults=faults))
    restore: list[Fault] = [
        _container(s, _RESTORE[a]) for s, a in sorted(down.items())]
    phases.append(Phase(name="recovery", duration=phase_duration, faults=restore))
    return phases


def _fault_phase_only(a: Assertion, phase: str) -> Assertion | None:
    """Keep the invariants of an assertion written for the original fault."""
    update: dict[str, Any] = {"phase": phase, "breaker": None}
    for kind in _COUNT_KINDS:
        bound: Comparison | None = getattr(a, kind)
        if bound is not None and bound.op in (">", ">="):
            update[kind] = None
    mapped = a.model_copy(update=update)
    return mapped if _checks_something(mapped) else None


def _checks_something(a: Assertion) -> bool:
    data = a.model_dump(exclude={"phase", "min_requests", "recovery_success_rate"},
                        exclude_none=True)
    return bool(data)


def map_assertions(original: Scenario, windows: list[str]) -> list[Assertion]:
    faulted = {p.name for p in original.phases if p.faults}
    first, last = original.phases[0].name, original.phases[-1].name
    mapped: list[Assertion] = []
    for a in original.assertions:
        if a.phase is None:
            mapped.append(a)
        elif a.phase == first:
            mapped.append(a.model_copy(update={"phase": "baseline"}))
        elif a.phase == last:
            mapped.append(a.model_copy(update={"phase": "recovery"}))
        elif a.phase in faulted:
            mapped.extend(m for w in windows if (m := _fault_phase_only(a, w)) is not None)
    return mapped


def to_scenario(original: Scenario, schedule: Schedule, phase_duration: float,
                name: str | None = None) -> Scenario:
    phases = build_phases(schedule, phase_duration)
    windows = [p.name for p in phases[1:-1]]
    data: dict[str, Any] = {
        "name": name or original.name,
        "description": f"Explored schedule for {original.name}: {schedule.describe()}",
        "phases": phases,
        "assertions": map_assertions(original, windows),
    }
    return original.model_copy(update=data)


def schedule_hash(schedule: Schedule) -> str:
    return hashlib.sha256(schedule.describe().encode()).hexdigest()[:8]


def _plain_comparisons(model: Any, dumped: Any) -> Any:
    """Bounds written without an operator stay so (a round trip must give an equal model)."""
    if isinstance(model, Comparison):
        return dumped if model.explicit else model.text.split(" ", 1)[1]
    if isinstance(dumped, dict) and hasattr(type(model), "model_fields"):
        return {k: _plain_comparisons(getattr(model, k, None), v) for k, v in dumped.items()}
    if isinstance(dumped, list) and isinstance(model, list):
        return [_plain_comparisons(m, d) for m, d in zip(model, dumped, strict=True)]
    return dumped


def scenario_yaml(scenario: Scenario, header: str = "") -> str:
    """An ordinary scenario file; `header` becomes a comment block at the top."""
    dumped = scenario.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data = _plain_comparisons(scenario, dumped)
    data.setdefault("name", scenario.name)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return comment + ("\n" if comment else "") + body
