"""A fault's window starts when its action is requested, not when Docker returns from it.

RunSession's own phase loop runs here without Docker or Locust: the injector is a stand-in
that takes APPLY seconds to apply (as `docker restart` takes most of a second) and REMOVE
to undo; the engine, result.json, events.ndjson and the report are the real ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from chaos.engine import run_scenario
from chaos.faults import switch as switch_module
from chaos.faults.base import Injected
from chaos.scenario.model import Scenario
from tests.fixtures.phase_loop import PhaseLoopOnly

APPLY, REMOVE = 0.4, 0.2






def _slow_inject(fault: Any, ctx: Any, index: int) -> Injected:
    time.sleep(APPLY)
    return Injected(f"restart container {fault.container}", undo=lambda: time.sleep(REMOVE))


@pytest.fixture
def slow_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switch_module, "inject", _slow_inject)


def _scenario() -> Scenario:
    return Scenario.model_validate({
        "name": "slow-restart",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
        "phases": [{"name": "baseline", "duration": "0.2s"},
                   {"name": "fault", "duration": "1s",
                    "faults": [{"container": "gateway", "action": "restart"}]}],
    })


def test_the_window_starts_at_the_request_and_both_instants_are_recorded(
        tmp_path: Path, slow_faults: None) -> None:
    result = run_scenario(_scenario(), report_root=tmp_path, session_factory=PhaseLoopOnly,
                          quiet=True)
    run_dir = Path(result.report_dir)
    saved = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    phase = next(p for p in saved["phases"] if p["name"] == "fault")
    fault = saved["faults"][0]
    assert fault["start"] - phase["start"] < 0.1, "the window starts when restart was asked for"
    assert fault["completed"] - fault["start"] >= APPLY - 0.01
    assert fault["removed"] - fault["end"] >= REMOVE - 0.01
    events = [json.loads(line) for line in (run_dir / "events.ndjson").read_text().splitlines()]
    on = next(e for e in events if e["kind"] == "fault_injected")
    off = next(e for e in events if e["kind"] == "fault_removed")
    assert on["completed"] - on["requested"] >= APPLY - 0.01
    assert off["completed"] - off["requested"] >= REMOVE - 0.01
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    faults = html[html.index('id="faults"'):]
    faults = faults[:faults.index("</table>")]
    assert f"{fault['start']:.2f}s" in faults and f"{fault['completed']:.2f}s" in faults
    assert "requested" in faults and "applied" in faults
