"""RunSession.run starts the witness and the probes before the phases, so the probes
sample while faults are on (a probe started after the phases reads only the end state)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import chaos.session as session_module
from chaos.session import RunSession


class Ordered(RunSession):
    def __init__(self) -> None:  # nothing brought up: only the order of run()'s steps
        self.order: list[str] = []
        self.scenario = None  # type: ignore[assignment]
        self.stack = None  # type: ignore[assignment]
        self.run_dir = Path(".")
        self.faulted = set()

    def _start_providers(self) -> None:
        self.order.append("providers")

    def _start_probes(self) -> None:
        self.order.append("probes")

    def _run_phases(self) -> None:
        self.order.append("phases")


def test_probes_start_before_the_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = SimpleNamespace(kind="none", note="no witness here")
    monkeypatch.setattr(session_module, "start_witness", lambda *args: (plan, None))
    session = Ordered()
    session.run()
    assert session.order == ["providers", "probes", "phases"]
    assert session.witness["kind"] == "none"
