"""Typed events of a run; the console, the recorder and the reports listen to them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.errors import Interrupted

if TYPE_CHECKING:
    from chaos.verdict.result import Result


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
class ProxyServerChosen(Event):
    """Which Toxiproxy serves the run (``note``: what that means for the run)."""

    server: str = ""
    note: str = ""
    kind: str = "proxy_server_chosen"


@dataclass(frozen=True)
class ImagesChecking(Event):
    """The images are about to be checked (each built only when its sources changed)."""

    kind: str = "images_checking"


@dataclass(frozen=True)
class ImageBuilt(Event):
    """A service's image exists and is up to date (built now, or found unchanged)."""

    service: str = ""
    image: str = ""
    kind: str = "image_built"


@dataclass(frozen=True)
class ProxyCreated(Event):
    """A run's proxy listens; ``server_name``/``api`` when it lives on a user's server."""

    name: str = ""
    listen: str = ""
    upstream: str = ""
    server_name: str = ""
    api: str = ""
    kind: str = "proxy_created"
    shown: bool = True  # False: on the run's own server, as the scenario names it (no line)


@dataclass(frozen=True)
class CaptureStarted(Event):
    services: tuple[str, ...] = ()
    kind: str = "capture_started"


@dataclass(frozen=True)
class LoadStarted(Event):
    users: int = 0
    target: str = ""
    kind: str = "load_started"


@dataclass(frozen=True)
class LoadWarning(Event):
    """The load generator could not keep the asked-for pace (chaos.verdict.generator)."""

    text: str = ""
    kind: str = "load_warning"


@dataclass(frozen=True)
class ProbeSample(Event):
    """One reading of a probe (``t`` is when it was read)."""

    probe: str = ""
    value: float = 0.0
    kind: str = "probe_sample"


@dataclass(frozen=True)
class TeardownStarted(Event):
    run_id: str = ""
    kind: str = "teardown_started"


@dataclass(frozen=True)
class TeardownProblems(Event):
    problems: tuple[str, ...] = ()
    kind: str = "teardown_problems"


@dataclass(frozen=True)
class LeftForSweep(Event):
    """Ledger entries the teardown could not remove: `chaos doctor --sweep` will."""

    entries: tuple[str, ...] = ()
    kind: str = "left_for_sweep"


@dataclass(frozen=True)
class LabelledRemoved(Event):
    """Everything carrying the run's label is gone (the Docker stack's final sweep)."""

    run_id: str = ""
    kind: str = "labelled_removed"


@dataclass(frozen=True)
class TeardownFinished(Event):
    run_id: str = ""
    kind: str = "teardown_finished"


@dataclass(frozen=True)
class RunInterrupted(Event):
    """Ctrl-C or SIGTERM: the run stops, tears down, and is judged interrupted."""

    reason: str = ""
    kind: str = "run_interrupted"


@dataclass(frozen=True)
class RunFailed(Event):
    """An environment error, or a harness part that died (``part``: which)."""

    error: str = ""
    part: str = ""
    kind: str = "run_failed"


@dataclass(frozen=True)
class ServiceReady(Event):
    service: str = ""
    image: str = ""
    seconds: float = 0.0
    version: str = ""  # a gateway profile's version line, once read (chaos.stack.gateway_version)
    warning: str = ""  # why that version could not be read (the run goes on)
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
    """The run's end, carrying its Result: the report writer writes on it.

    ``records``/``t0``: the request records and the first phase's start, which the
    reports cut the fault log lines from. Neither is part of the events.ndjson line."""

    verdict: str = ""
    exit_code: int = 0
    report_dir: str = ""
    kind: str = "run_finished"
    result: Result | None = field(default=None, compare=False, repr=False)
    records: Path | None = field(default=None, compare=False, repr=False)
    t0: float | None = field(default=None, compare=False, repr=False)


def record(event: Event) -> dict[str, Any]:
    """An event as its events.ndjson line: its fields and ``type`` (the class name);
    what only listeners in the process need (a RunFinished's Result) stays out."""
    return {"type": type(event).__name__,
            **{f.name: getattr(event, f.name) for f in fields(event) if f.compare}}


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events; a failing listener never breaks the run (unless critical)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.critical: set[int] = set()

    def subscribe(self, listener: Listener, critical: bool = False) -> None:
        """``critical``: its failure is the run's (the report writer), not just printed."""
        self.listeners.append(listener)
        if critical:
            self.critical.add(id(listener))

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Interrupted:
                raise  # Ctrl-C/SIGTERM landed while a listener ran: the run must still stop
            except Exception as exc:  # noqa: BLE001 - a broken listener must not stop teardown
                if id(listener) in self.critical:
                    raise
                print(f"[chaos] listener error: {exc}", file=sys.stderr)


class Recorder:
    """Writes every event as one NDJSON line (events.ndjson in the run folder)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def __call__(self, event: Event) -> None:
        self.handle.write(json.dumps(record(event), default=str) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
