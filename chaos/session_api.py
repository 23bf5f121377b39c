"""What the engine reads from a run session once the run is over.

The engine drives ``run()`` then ``teardown()`` and afterwards reads what the session
observed. ``RunSession`` (the phase loop over a ``chaos.stack`` Stack) is the one the CLI
uses; anything with the same shape can stand in (``run_scenario(session_factory=)``), so
tests replay recorded observations through the real verdict and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chaos.capture.sidecar import Captured
    from chaos.observe.events import EventBus
    from chaos.scenario.model import Scenario
    from chaos.verdict.result import FaultRecord, PhaseWindow


class RunSessionLike(Protocol):
    """One run's environment: brought up and exercised by run(), removed by teardown().

    teardown() is called on every path (also after run() raised or was interrupted) and
    must not raise; the attributes are read only after it returned.
    """

    def run(self) -> None: ...

    def teardown(self) -> None: ...

    @property
    def provider(self) -> str:
        """Which Toxiproxy served the run (shown in the report)."""

    @property
    def images(self) -> dict[str, str]:
        """Service name -> image (or whatever ran it)."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def records_path(self) -> Path:
        """The per-request NDJSON records the load generator wrote."""

    @property
    def t0(self) -> float:
        """Epoch seconds of the first phase's start: every offset is relative to it."""

    @property
    def windows(self) -> list[PhaseWindow]: ...

    @property
    def fault_records(self) -> list[FaultRecord]: ...

    @property
    def logs(self) -> dict[str, str]:
        """Service name -> its log text (masked by the engine before it is written)."""

    @property
    def breaker_samples(self) -> list[tuple[float, float]]: ...

    @property
    def upstream_samples(self) -> list[tuple[float, float]]: ...

    @property
    def capture_names(self) -> dict[str, str]:
        """Run network IP -> service name, for the packet-capture evidence."""

    @property
    def captured(self) -> Captured | None: ...


SessionFactory = Callable[["Scenario", str, Path, "EventBus"], RunSessionLike]
"""(scenario, run id, run folder, event bus) -> session (replaces stack and phase loop)."""


def witness_of(session: RunSessionLike) -> dict[str, object]:
    """result.witness as the session summed it up (``RunSession.witness``: kind, sources,
    attempts, dropped, connections, note); {} from a session that keeps none (a replay)."""
    return dict(getattr(session, "witness", None) or {})
