"""Typed events of a run; the console, the recorder and the reports listen to them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chaos.errors import Interrupted


@dataclass(frozen=True)
class Event:
    kind: str
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunStarted(Event):
    scenario: str = ""
    run_id: str = ""
    kind: str = "run_started"


@dataclass(frozen=True)
class Setup(Event):
    message: str = ""
    kind: str = "setup"


@dataclass(frozen=True)
class ServiceReady(Event):
    service: str = ""
    image: str = ""
    seconds: float = 0.0
    kind: str = "service_ready"


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str = ""
    duration: float = 0.0
    kind: str = "phase_started"


@dataclass(frozen=True)
class FaultInjected(Event):
    """``requested``/``completed``: epoch seconds the action was asked for and returned."""

    phase: str = ""
    description: str = ""
    kind: str = "fault_injected"
    requested: float | None = None
    completed: float | None = None
    restore: bool = False  # start/unpause: brings a service back, is no fault window


@dataclass(frozen=True)
class FaultRemoved(Event):
    phase: str = ""
    description: str = ""
    kind: str = "fault_removed"
    requested: float | None = None
    completed: float | None = None


@dataclass(frozen=True)
class RecoveryMeasured(Event):
    """The run's recovery (chaos.verdict.recovery), as result.json and the report show it."""

    text: str = ""
    seconds: float | None = None
    kind: str = "recovery_measured"


@dataclass(frozen=True)
class AssertionEvaluated(Event):
    phase: str = ""
    check: str = ""
    passed: bool = True
    message: str = ""
    status: str = ""
    kind: str = "assertion_evaluated"


@dataclass(frozen=True)
class RunFinished(Event):
    verdict: str = ""
    exit_code: int = 0
    report_dir: str = ""
    kind: str = "run_finished"


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events; a failing listener never breaks the run."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Interrupted:
                raise  # Ctrl-C/SIGTERM landed while a listener ran: the run must still stop
            except Exception as exc:  # noqa: BLE001 - a broken listener must not stop teardown
                print(f"[chaos] listener error: {exc}", file=sys.stderr)


class Recorder:
    """Writes every event as one NDJSON line (events.ndjson in the run folder)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def __call__(self, event: Event) -> None:
        self.handle.write(json.dumps(asdict(event), default=str) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


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
        text = _describe(event)
        if isinstance(event, PhaseStarted) and self.t0 is None:
            self.t0 = event.t
        if text:
            self._print(text)


def _describe(event: Event) -> str:
    describers: dict[type, Callable[[Any], str]] = {
        RunStarted: lambda e: f"run {e.run_id} of scenario {e.scenario}",
        Setup: lambda e: e.message,
        ServiceReady: lambda e: f"service {e.service} ready ({e.image}, {e.seconds:.1f}s)",
        PhaseStarted: lambda e: f"phase {e.phase} ({e.duration:g}s)",
        FaultInjected: lambda e: f"  {'restore' if e.restore else 'fault on'}: "
        + e.description + _took(e),
        FaultRemoved: lambda e: f"  fault off: {e.description}" + _took(e),
        RecoveryMeasured: lambda e: e.text,
        AssertionEvaluated: lambda e: f"  {(e.status or ('pass' if e.passed else 'fail')).upper()} "
        + f"[{e.phase}] {e.check}" + (f": {e.message}" if e.message else ""),
        RunFinished: lambda e: f"verdict: {e.verdict.upper()} (exit {e.exit_code})"
        + (f"; reports in {e.report_dir}" if e.report_dir else ""),
    }
    describe = describers.get(type(event))
    return describe(event) if describe else ""


def _took(event: FaultInjected | FaultRemoved) -> str:
    """How long the action took, when it was long enough to matter (a Docker restart)."""
    if event.requested is None or event.completed is None:
        return ""
    took = event.completed - event.requested
    return f" (the action took {took:.2f}s)" if took >= 0.05 else ""
