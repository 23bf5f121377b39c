"""Cross-checks of what the language scopes: bounds on one request, faults inside a phase.

Kept apart from the loader's other checks; each problem is a ScenarioError naming the
file, line and key path (exit 2).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from chaos.outcomes import ALIASES
from chaos.scenario.model import (
    UNDO_ACTIONS,
    Assertion,
    ContainerFault,
    Scenario,
)
from chaos.scenario.units import format_duration, shown
from chaos.scenario.yaml_marks import MarkedDocument

# Assertion keys that judge something other than the client records of a phase: they
# cannot be narrowed to one request's records.
UNSCOPED: tuple[str, ...] = ("breaker", "recovers_within", "retry_amplification", "rst_from",
            "attempts_per_request", "upstream_timeout", "retries_non_idempotent", "shed")
_WITNESS = "the upstream witness's figures are per phase"
_WHY = {
    "breaker": "the breaker's state belongs to the gateway, not to one request",
    "recovers_within": "recovery is measured over all requests of the phase",
    "retry_amplification": "the upstream counter counts every request",
    "rst_from": "packet captures do not know request names",
    **{key: _WITNESS for key in UNSCOPED[4:]},
}
# The LLM keys (chaos.scenario.llm_bounds) are judged per phase too (chaos.verdict.llm_checks)
LLM_KEYS = ("ttft", "inter_token", "fallback_used", "served_by", "retry_after_honoured",
            "no_retry_on", "status", "retry_after_on_429")
UNSCOPED += LLM_KEYS
_WHY.update({key: "the LLM figures are per phase" for key in LLM_KEYS})


def check_scoping(scenario: Scenario, doc: MarkedDocument) -> None:
    for i, assertion in enumerate(scenario.assertions):
        _check_request(scenario, doc, assertion, i)
        _check_aliases(doc, assertion, i)
    _check_fault_timing(scenario, doc)


def _check_request(scenario: Scenario, doc: MarkedDocument, a: Assertion, i: int) -> None:
    if a.request is None:
        return
    names = [r.name for r in scenario.load.requests]
    if a.request not in names:
        raise doc.error(("assertions", i, "request"), unknown_with_hint("request", a.request,
                                                                        names))
    for key in UNSCOPED:
        if getattr(a, key) is not None:
            raise doc.error(("assertions", i, key),
                            f"{key} cannot be bounded for one request ({_WHY[key]}): move it "
                            "to an assertion without request")


def _check_aliases(doc: MarkedDocument, a: Assertion, i: int) -> None:
    """`resets` and `reset` count the same requests: one bound, not two that may disagree."""
    for alias, (outcome,) in ((k, v) for k, v in ALIASES.items() if len(v) == 1):
        if getattr(a, alias) is not None and getattr(a, outcome) is not None:
            raise doc.error(("assertions", i, outcome),
                            f"{outcome} and {alias} count the same requests; give one of them")


def unknown_with_hint(kind: str, name: str, known: Iterable[str]) -> str:
    """'unknown request 'chta' (did you mean 'chat'?; known: chat, models)'."""
    options = sorted(set(known))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?; " if close else ""
    return f"unknown {kind} {shown(name)} ({hint}known: {', '.join(options) or 'none defined'})"


def _check_fault_timing(scenario: Scenario, doc: MarkedDocument) -> None:
    """`at` starts inside the phase; `at` + `for` ends within it; `for` needs an undo."""
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            at, length = fault.at or 0.0, fault.for_
            where = ("phases", i, "faults", j)
            if at >= phase.duration:
                raise doc.error((*where, "at"), f"at {format_duration(at)} is not inside the "
                                f"phase {phase.name!r} ({format_duration(phase.duration)} long)")
            if length is None:
                continue
            if isinstance(fault, ContainerFault) and fault.action not in UNDO_ACTIONS:
                undoable = ", ".join(UNDO_ACTIONS)
                raise doc.error((*where, "for"), f"{fault.action} has nothing to undo after "
                                f"`for`; only {undoable} are undone (by "
                                f"{', '.join(sorted(set(UNDO_ACTIONS.values())))})")
            if at + length > phase.duration + 1e-9:
                raise doc.error((*where, "for"), f"the fault must end within its phase: at "
                                f"{format_duration(at)} + for {format_duration(length)} = "
                                f"{format_duration(at + length)}, but {phase.name!r} lasts "
                                f"{format_duration(phase.duration)}")

