"""One recovery figure (chaos.verdict.recovery): sub-second, and the same in the assertion,
result.json, the report card and the console.

The agreement test drives the real engine (verdict, result.json, report, console) through
the transport seam with a session that only replays synthetic request records: the
issue's gateway-killed-and-restarted run, where the card once said 7.6 s and the assertion
1.0 s.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chaos.engine import run_scenario
from chaos.load.classify import GRACEFUL, OK, REFUSED
from chaos.observe.console import Console
from chaos.observe.events import EventBus
from chaos.scenario.model import Scenario
from chaos.verdict import recovery
from chaos.verdict.evaluate import Evidence, evaluate
from chaos.verdict.recovery import Slots, measure, run_recovery
from chaos.verdict.result import FaultRecord, PhaseWindow
from chaos.verdict.stats import Record

T0 = 1_700_000_000.0  # epoch seconds of the first phase


def slots(*spans: tuple[float, float, str], rate: float = 100.0) -> Slots:
    """Requests at `rate` per second, [start, end) with one outcome each span."""
    out = Slots()
    for start, end, outcome in spans:
        n = round((end - start) * rate)
        for i in range(n):
            out.add(start + i / rate, outcome in (OK,))
    return out


def test_healthy_at_is_the_first_success_after_the_outage_not_a_whole_second() -> None:
    found = measure(slots((0.0, 3.37, REFUSED), (3.37, 8.0, OK)), 0.0, 8.0, [], 0.95)
    assert found is not None and found.recovered
    assert found.healthy_at == 3.37 and found.seconds == 3.37  # old buckets said 4.0


def test_counted_from_the_last_fault_change_before_health() -> None:
    records = slots((0.0, 2.5, OK), (2.5, 6.0, REFUSED), (6.0, 10.0, OK))
    changes = [(2.5, "kill container backend"), (5.21, "start container backend"),
               (8.0, "latency on proxy backend")]  # after health: not the reference
    found = measure(records, 0.0, 10.0, changes, 0.95)
    assert found is not None
    assert (found.reference, found.since, found.seconds) == (5.21, "start container backend", 0.79)


def test_noise_is_not_an_outage_and_a_relapse_is() -> None:
    noisy = Slots()
    for i in range(500):  # 3 failures in every 100 requests: noise around 95%
        noisy.add(i / 100, i % 100 not in (10, 40, 70))
    found = measure(noisy, 0.0, 5.0, [], 0.95)
    assert found is not None and found.seconds == 0.0
    relapse = slots((0.0, 1.0, OK), (1.0, 1.5, GRACEFUL), (1.5, 3.0, OK), (3.0, 3.42, GRACEFUL),
                    (3.42, 6.0, OK))
    found = measure(relapse, 0.0, 6.0, [], 0.95)
    assert found is not None and found.healthy_at == 3.42
    ending = slots((0.0, 2.0, OK), (2.0, 3.0, GRACEFUL))
    found = measure(ending, 0.0, 3.0, [], 0.95)
    assert found is not None and not found.recovered and found.seconds is None


def test_a_lone_failure_in_the_last_milliseconds_is_judged_with_its_full_window() -> None:
    records = slots((0.0, 4.0, OK))
    records.add(3.995, False)  # alone, it would be a window of 0 of 1
    found = measure(records, 0.0, 4.0, [], 0.95)
    assert found is not None and found.seconds == 0.0
    assert measure(Slots(), 0.0, 4.0, [], 0.95) is None  # no requests: unknown


@pytest.mark.parametrize("rates, expected", [
    ([1, 1, 0, 0, 0, 0.5, 1, 1, 1, 1], (1.1, True)),  # start at 4.4, first success at 5.5
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], (0.0, True)),    # never degraded
    ([1, 1, 1, 1, 1, 0.94, 1, 1, 1, 1], (0.0, True)),  # 6 of 100 failing is noise around 95%
    ([1, 1, 1, 1, 1, 0.8, 1, 1, 1, 1], (0.8, True)),   # 20 are not: healthy from 5.2
    ([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], (None, False)),  # still degraded at the end
])
def test_the_runs_recovery_counts_from_the_last_fault_change(
        rates: list[float], expected: tuple[float | None, bool]) -> None:
    per_second = Slots()
    for second, rate in enumerate(rates):
        for i in range(100):  # each second's failures come first
            per_second.add(second + i / 100, i >= 100 - round(100 * rate))
    faults = [FaultRecord("fault", "kill", 2.0, 4.0), FaultRecord("recovery", "start", 4.4)]
    found = run_recovery(per_second, faults, 10.0)
    assert found is not None and (found.seconds, found.recovered) == expected


def test_clients_stuck_when_the_phase_begins_count_for_the_assertion_too() -> None:
    # measured on Docker: the gateway killed, clients stuck in connects to it start no
    # request in the recovery phase's first 0.4 s; the first success comes at 14.4 s
    records = [Record(i / 100, "", OK if i < 600 else REFUSED, 0.005, 0, "") for i in range(1400)]
    records += [Record(14.4 + i / 100, "recovery", OK, 0.005, 200, "") for i in range(960)]
    windows = [PhaseWindow("baseline", 0.0, 6.0), PhaseWindow("fault", 6.0, 14.0),
               PhaseWindow("recovery", 14.0, 24.0)]
    faults = [FaultRecord("fault", "kill container gateway", 6.0, 14.0),
              FaultRecord("recovery", "start container gateway", 14.0, 24.0)]
    evidence = Evidence(records, windows, [], faults=faults)
    card = run_recovery(evidence.aggregate.slots, faults, 24.0)
    assertion = next(a for a in evaluate(_scenario(), evidence) if a.kind == "recovers_within")
    assert card is not None and card.seconds == 0.4 and card.since == "start container gateway"
    assert assertion.value == 0.4 and assertion.observed == recovery.shown(card) == "0.40s"


# -------------------------------------------------------------- through the whole engine

KILL, START = 6.0, 14.4  # the run: the gateway killed, then started at 14.4 s
UP = 15.05  # the first request the restarted gateway answered


def _scenario() -> Scenario:
    return Scenario.model_validate({
        "name": "gateway-restart",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [{"name": "get", "path": "/"}]},
        "phases": [{"name": "baseline", "duration": "6s"},
                   {"name": "fault", "duration": "8.4s",
                    "faults": [{"container": "gateway", "action": "kill"}]},
                   {"name": "recovery", "duration": "5.6s",
                    "faults": [{"container": "gateway", "action": "start"}]}],
        "assertions": [{"phase": "recovery", "recovers_within": "2s"}],
    })


class ReplaySession:
    """A session whose run() only writes the request records a real run would have."""

    def __init__(self, scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> None:
        self.run_dir, self.records_path, self.t0 = run_dir, run_dir / "requests.ndjson", T0
        self.provider, self.images, self.logs = "replay", {}, {}
        self.breaker_samples: list[tuple[float, float]] = []
        self.upstream_samples: list[tuple[float, float]] = []
        self.capture_names: dict[str, str] = {}
        self.captured = None
        self.windows = [PhaseWindow("baseline", 0.0, KILL),
                        PhaseWindow("fault", KILL, START, ["kill container gateway"]),
                        PhaseWindow("recovery", START, 20.0, ["start container gateway"])]
        self.fault_records = [
            FaultRecord("fault", "kill container gateway", KILL, START, completed=KILL + 0.1),
            FaultRecord("recovery", "start container gateway", START, 20.0, completed=START + 0.3)]

    def run(self) -> None:
        lines = []
        for i in range(2000):  # 100 requests per second for 20 s
            t = i / 100
            phase = next(w.name for w in reversed(self.windows) if t >= w.start)
            outcome = REFUSED if KILL <= t < UP else OK
            lines.append(json.dumps({"t": T0 + t, "phase": phase, "outcome": outcome,
                                     "latency_ms": 5.0, "status": 200 if outcome == OK else 0}))
        self.records_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def teardown(self) -> None:
        pass


def test_the_card_the_assertion_result_json_and_console_show_one_figure(tmp_path: Path) -> None:
    stream = io.StringIO()
    bus = EventBus()
    bus.subscribe(Console(stream=stream, live=False))
    result = run_scenario(_scenario(), report_root=tmp_path, session_factory=ReplaySession,
                          bus=bus, quiet=True)
    assertion = next(a for a in result.assertions if a.kind == "recovers_within")
    assert assertion.value == 0.65 and assertion.observed == "0.65s" and assertion.passed
    saved = json.loads((Path(result.report_dir) / "result.json").read_text(encoding="utf-8"))
    assert saved["recovery_s"] == 0.65 and saved["recovered"] is True
    assert saved["recovery"]["since"] == "start container gateway"
    assert saved["recovery"]["healthy_at"] == UP and saved["recovery"]["reference"] == START
    html = (Path(result.report_dir) / "report.html").read_text(encoding="utf-8")
    card = html[html.index('id="summary"'):html.index("</header>")]
    assert "0.65s" in card and "7.6" not in card
    assert "recovery: 0.65s after start container gateway (healthy from 15.05s)" in stream.getvalue()
