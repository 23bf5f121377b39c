"""What each event looks like on the console: one line, or none (recorded only)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from chaos.observe.events import (
    AssertionEvaluated,
    CaptureStarted,
    Event,
    FaultInjected,
    FaultRemoved,
    ImagesChecking,
    LabelledRemoved,
    LeftForSweep,
    LoadStarted,
    LoadWarning,
    PhaseStarted,
    ProxyCreated,
    ProxyServerChosen,
    RecoveryMeasured,
    RunFinished,
    RunStarted,
    ServiceReady,
    TeardownProblems,
    TeardownStarted,
)


class ConsoleProgress:
    """One line per event on stderr: what a user watches while a run goes."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0: float | None = None

    def _print(self, text: str) -> None:
        stamp = "" if self.t0 is None else f"{time.time() - self.t0:6.1f}s "
        print(f"[chaos] {stamp}{text}", file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if self.quiet and not isinstance(event, RunFinished):
            return
        text = describe(event)
        if isinstance(event, PhaseStarted) and self.t0 is None:
            self.t0 = event.t
        if text:
            self._print(text)


def describe(event: Event) -> str:
    """The console line of an event (empty: the console stays silent on it)."""
    describers: dict[type, Callable[[Any], str]] = {
        RunStarted: lambda e: f"run {e.run_id} of scenario {e.scenario}",
        ProxyServerChosen: lambda e: f"Toxiproxy: {e.server}" + (f"; {e.note}" if e.note else ""),
        ImagesChecking: lambda e: "checking images (built only when their sources changed)",
        ProxyCreated: _proxy_line,
        CaptureStarted: lambda e: f"capturing packets and socket states on {', '.join(e.services)}",
        LoadStarted: lambda e: f"load: {e.users} users -> {e.target}",
        LoadWarning: lambda e: f"warning: {e.text}",
        TeardownStarted: lambda e: f"tearing down run={e.run_id}",
        TeardownProblems: lambda e: "teardown problems: " + "; ".join(e.problems),
        LeftForSweep: lambda e: f"left for `chaos doctor --sweep`: {', '.join(e.entries)}",
        LabelledRemoved: lambda e: f"removed everything labelled run={e.run_id}",
        ServiceReady: lambda e: f"service {e.service} ready ({e.image}, {e.seconds:.1f}s)"
        + (f": {e.version}" if e.version else "")
        + (f"; warning: its version is unknown: {e.warning}" if e.warning else ""),
        PhaseStarted: lambda e: f"phase {e.phase} ({e.duration:g}s)",
        FaultInjected: lambda e: f"  {'restore' if e.restore else 'fault on'}: "
        + e.description + _took(e),
        FaultRemoved: lambda e: f"  fault off: {e.description}" + _took(e),
        RecoveryMeasured: lambda e: e.text,
        AssertionEvaluated: lambda e: f"  {(e.status or ('pass' if e.passed else 'fail')).upper()} "
        + f"[{e.phase}] {e.check}" + (f": {e.message}" if e.message else ""),
        RunFinished: lambda e: f"verdict: {e.verdict.upper()} (exit {e.exit_code})"
        + _witness(e) + (f"; reports in {e.report_dir}" if e.report_dir else ""),
    }
    describe = describers.get(type(event))
    return describe(event) if describe else ""


def _witness(event: RunFinished) -> str:
    """Which side of the gateway the verdict saw (issue 18): '; upstream witness: tap'."""
    witness = getattr(event.result, "witness", None)
    kind = witness.get("kind") if isinstance(witness, dict) else None
    return f"; upstream witness: {kind}" if kind else ""


def _proxy_line(event: ProxyCreated) -> str:
    if not event.shown:
        return ""
    if event.api:  # on the user's server, under the run's own name
        return (f"proxy {event.name}: {event.server_name} on {event.api}, "
                f"listening on {event.listen}")
    named = event.server_name or event.name
    shown = event.name if named == event.name else f"{event.name} ({named})"
    return f"proxy {shown}: listening on {event.listen} -> {event.upstream}"


def _took(event: FaultInjected | FaultRemoved) -> str:
    """How long the action took, when it was long enough to matter (a Docker restart)."""
    if event.requested is None or event.completed is None:
        return ""
    took = event.completed - event.requested
    return f" (the action took {took:.2f}s)" if took >= 0.05 else ""
