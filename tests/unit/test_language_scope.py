"""What the language can say now (issue 16 item 5): bounds on one request kind, a count of
any outcome class, a fault `at` an offset for a duration; and the loader's refusals of each
misuse, naming file, line and key (exit 2 from the command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ScenarioError
from chaos.load.classify import (
    CLOSED,
    CONNECT_TIMEOUT,
    COUNT_BOUNDS,
    GRACEFUL,
    OK,
    OTHER,
    OUTCOMES,
    READ_TIMEOUT,
    REFUSED,
    RESET,
    TRUNCATED,
)
from chaos.scenario.loader import load_scenario, scale_phases
from chaos.scenario.model import Assertion, Scenario
from chaos.verdict.evaluate import EXPLAIN, Evidence, evaluate, scoped_requests
from chaos.verdict.result import AssertionResult, PhaseWindow
from chaos.verdict.stats import Record, read_records

BASE = """\
name: mixed
services:
  backend: {build: docker/backend, port: 8080}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  requests:
    - {name: chat, method: POST, path: /v1/chat/completions, stream: true}
    - {name: items, path: /api/items/1}
phases:
  - name: baseline
    duration: 4s
  - name: fault
    duration: 4s
    faults:
      - proxy: backend
        toxic: {type: latency, attributes: {latency: 100}}
        at: 1s
        for: 2s
assertions:
  - phase: fault
    request: chat
    success_rate: ">= 0.9"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mixed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(tmp_path: Path, old: str, new: str) -> ScenarioError:
    assert BASE.count(old) == 1, old
    path = _write(tmp_path, BASE.replace(old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    error = caught.value
    assert error.file == str(path)
    return error


def _line(text: str, needle: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, hits
    return hits[0]


# ---------------------------------------------------------------- loader


def test_the_base_scenario_loads_with_request_at_and_for(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE))
    fault = scenario.phases[1].faults[0]
    assert (fault.at, fault.for_) == (1.0, 2.0)
    assert fault.describe().endswith(" at +1s for 2s")
    assert scenario.assertions[0].request == "chat"


def test_an_unknown_request_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    text = BASE.replace("request: chat", "request: chta")
    error = _refused(tmp_path, "request: chat", "request: chta")
    assert error.key == "assertions[0].request"
    assert error.line == _line(text, "request: chta")
    assert "unknown request 'chta'" in error.message and "did you mean 'chat'?" in error.message
    assert "known: chat, items" in error.message


@pytest.mark.parametrize(("old", "new", "key"), [
    ('success_rate: ">= 0.9"', "recovers_within: 2s", "recovers_within"),
    ('success_rate: ">= 0.9"', 'rst_from: {gateway: 0}', "rst_from"),
])
def test_bounds_that_are_not_about_one_request_are_refused_with_request(
        tmp_path: Path, old: str, new: str, key: str) -> None:
    error = _refused(tmp_path, old, new)
    assert error.key == f"assertions[0].{key}"
    assert "cannot be bounded for one request" in error.message


def test_a_class_and_its_plural_spelling_together_are_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, 'success_rate: ">= 0.9"', "resets: 0\n    reset: 0")
    assert error.key == "assertions[0].reset"
    assert "reset and resets count the same requests" in error.message


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ("at: 1s", "at: 4s", "at", "is not inside the phase 'fault' (4s long)"),
    ("for: 2s", "for: 3500ms", "for", "at 1s + for 3500ms = 4500ms, but 'fault' lasts 4s"),
    ("for: 2s", "for: 0s", "for", "at least 1ms"),
])
def test_a_fault_that_does_not_fit_its_phase_is_refused(
        tmp_path: Path, old: str, new: str, key: str, words: str) -> None:
    text = BASE.replace(old, new)
    error = _refused(tmp_path, old, new)
    assert error.key == f"phases[1].faults[0].{key}"
    assert error.line == _line(text, new)
    assert words in error.message


def test_for_on_an_action_with_nothing_to_undo_is_refused(tmp_path: Path) -> None:
    old = "      - proxy: backend\n        toxic: {type: latency, attributes: {latency: 100}}\n"
    error = _refused(tmp_path, old, "      - container: backend\n        action: restart\n")
    assert error.key == "phases[1].faults[0].for"
    assert "restart has nothing to undo" in error.message and "kill, stop, pause" in error.message


def test_validate_exits_2_with_file_line_and_key(tmp_path: Path) -> None:
    text = BASE.replace("for: 2s", "for: 5s")
    path = _write(tmp_path, text)
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{path}:{_line(text, 'for: 5s')}: phases[1].faults[0].for: "
                                  "the fault must end within its phase")
    assert "Traceback" not in proc.stderr


def test_duration_scale_scales_at_and_for_with_their_phase(tmp_path: Path) -> None:
    scenario = scale_phases(load_scenario(_write(tmp_path, BASE)), 0.5)
    fault = scenario.phases[1].faults[0]
    assert (scenario.phases[1].duration, fault.at, fault.for_) == (2.0, 0.5, 1.0)


# ---------------------------------------------------------------- one list of outcome classes


def test_every_outcome_class_is_a_count_bound_and_timeouts_is_their_sum() -> None:
    assert set(OUTCOMES) <= set(COUNT_BOUNDS)
    assert COUNT_BOUNDS["timeouts"] == (CONNECT_TIMEOUT, READ_TIMEOUT)
    assert set(COUNT_BOUNDS) <= set(Assertion.model_fields) and set(COUNT_BOUNDS) <= set(EXPLAIN)


# ---------------------------------------------------------------- evaluation

WINDOWS = [PhaseWindow("baseline", 0.0, 10.0), PhaseWindow("fault", 10.0, 20.0, ["latency"])]


def _scenario(*assertions: dict[str, Any]) -> Scenario:
    return Scenario.model_validate({
        "name": "mixed",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000}},
        "load": {"target": "gateway", "requests": [{"name": "chat", "path": "/c"},
                                                   {"name": "items", "path": "/i"}]},
        "phases": [{"name": w.name, "duration": w.end - w.start} for w in WINDOWS],
        "assertions": list(assertions),
    })


def _records() -> list[Record]:
    """In fault: 20 chat streams (slow, 4 cut short), 80 JSON calls (fast, 1 reset)."""
    chat = [Record(10 + i * 0.1, "fault", TRUNCATED if i < 4 else OK, 2.0, 200, "", "chat")
            for i in range(20)]
    items = [Record(10 + i * 0.1, "fault", RESET if i == 0 else OK, 0.02, 200, "", "items")
             for i in range(80)]
    return chat + items


def _judge(*assertions: dict[str, Any]) -> dict[str, AssertionResult]:
    results = evaluate(_scenario(*assertions), Evidence(_records(), WINDOWS, []))
    return {r.label: r for r in results}


def test_request_scoped_bounds_see_only_that_requests_records() -> None:
    got = _judge(
        {"phase": "fault", "request": "items", "p95": "< 100ms", "resets": "<= 1",
         "truncated": 0, "success_rate": ">= 0.9"},
        {"phase": "fault", "request": "chat", "truncated": "<= 4", "p95": "< 100ms"},
        {"phase": "fault", "p95": "< 100ms"},
    )
    items_p95 = got["p95 (request items)"]
    assert items_p95.passed and items_p95.request == "items" and items_p95.observed.startswith("2")
    assert got["resets (request items)"].observed == "1"
    assert got["truncated (request items)"].passed  # the streams' truncations are not its own
    assert got["success_rate (request items)"].observed == f"{79 / 80:.4f}"
    assert got["truncated (request chat)"].observed == "4"
    chat_p95 = got["p95 (request chat)"]
    assert not chat_p95.passed and "during fault (chat requests)" in chat_p95.message
    assert not got["p95"].passed and got["p95"].request is None  # all requests mixed


def test_a_request_with_too_few_records_is_inconclusive() -> None:
    got = _judge({"phase": "baseline", "request": "chat", "p95": "< 1s"})
    only = got["min_requests (request chat)"]
    assert only.status == "inconclusive" and "during baseline (chat requests)" in only.message


@pytest.mark.parametrize(("key", "outcomes"), [
    ("connect_timeout", [CONNECT_TIMEOUT]), ("read_timeout", [READ_TIMEOUT]),
    ("other", [OTHER]), ("closed", [CLOSED]), ("refused", [REFUSED]), ("reset", [RESET]),
    ("graceful_error", [GRACEFUL]), ("ok", [OK]), ("timeouts", [CONNECT_TIMEOUT, READ_TIMEOUT]),
])
def test_each_outcome_class_counts_alone(key: str, outcomes: list[str]) -> None:
    mix = [CONNECT_TIMEOUT] * 2 + [READ_TIMEOUT] * 3 + [OTHER] * 4 + [CLOSED] * 5 + \
        [REFUSED] * 6 + [RESET] * 7 + [GRACEFUL] * 8 + [OK] * 9
    records = [Record(10 + i * 0.05, "fault", o, 0.01, 0, "") for i, o in enumerate(mix)]
    expected = sum(mix.count(o) for o in outcomes)
    results = evaluate(_scenario({"phase": "fault", key: expected}),
                       Evidence(records, WINDOWS, []))
    assert [(r.kind, r.observed, r.passed) for r in results] == [(key, str(expected), True)]
    wrong = evaluate(_scenario({"phase": "fault", key: 0}), Evidence(records, WINDOWS, []))[0]
    assert not wrong.passed and f"{expected} of {len(mix)} requests during fault" in wrong.message


def test_records_carry_their_request_name(tmp_path: Path) -> None:
    path = tmp_path / "requests.ndjson"
    path.write_text('{"t": 101.0, "phase": "fault", "name": "chat", "outcome": "ok", '
                    '"latency_ms": 5, "status": 200, "detail": ""}\n')
    assert [r.request for r in read_records(path, 100.0)] == ["chat"]


def test_evidence_keeps_apart_only_the_requests_that_bounds_name() -> None:
    """Each kept request costs a latency histogram per record: the engine keeps only those
    a `request:` bound names (300k records: 1.9 s without, 2.6 s with one, 3.2 s all)."""
    scenario = _scenario({"phase": "fault", "request": "chat", "truncated": "<= 4"})
    evidence = Evidence(_records(), WINDOWS, [], requests=scoped_requests(scenario))
    assert {name for _, name in evidence.aggregate.requests} == {"chat"}
    [result] = evaluate(scenario, evidence)
    assert result.passed and result.observed == "4"
