"""A result.json handed to `chaos report` or `chaos run --baseline` is checked before use:
a bad one is exit 2 naming the file and the JSON path of the first problem, never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chaos.cli import main
from chaos.report import validate
from chaos.report.writer import ReportInputError, load_result, result_json
from chaos.verdict.baseline import compare, regression_field, render_text
from tests.fixtures.report_cases import RUNS, degenerate, recorded

FAIL_RUN = json.loads((RUNS / "fail" / "result.json").read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: Any, name: str = "result.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _raw(key: str, literal: str) -> str:
    """FAIL_RUN's text with one value replaced by a raw JSON literal."""
    return json.dumps({**FAIL_RUN, key: "@@"}).replace('"@@"', literal)


def _report(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["report", str(path), "--output", str(path.parent / "report.html")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("change", "where", "says"), [
    (lambda d: d["phases"][0].update(start="x"), "phases[0].start", 'expected number, got "x"'),
    (lambda d: d["phase_stats"][1].update(total=1.5), "phase_stats[1].total", "expected integer"),
    (lambda d: d["phase_stats"][0]["counts"].update(ok="7"), "phase_stats[0].counts.ok",
     'expected integer, got "7"'),
    (lambda d: d.update(breaker=[[1.0]]), "breaker[0]", "too short"),
    (lambda d: d.update(timeline=[{"t": 0}]), "timeline[0]", "'total' is missing"),
    (lambda d: d["assertions"][0].update(status="maybe"), "assertions[0].status",
     'got "maybe"'),
    (lambda d: d.update(duration_s=1e300), "duration_s", "out of range"),
    (lambda d: d.update(evidence={"samples": [{"t": "soon", "outcome": "reset"}]}),
     "evidence.samples[0].t", 'expected number, got "soon"'),
    (lambda d: d.update(regression={"baseline": 1, "tolerance": 0.5, "regressed": False,
                                      "checks": []}), "regression.baseline", "expected string"),
    (lambda d: d["faults"].append({"phase": "x"}), "faults[", "is missing"),
])
def test_a_type_wrong_file_names_the_file_and_the_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, where: str,
        says: str) -> None:
    data = copy.deepcopy(FAIL_RUN)
    change(data)
    path = _write(tmp_path, data)
    code, err = _report(path, capsys)
    assert code == 2
    assert err.startswith(f"chaos: {path}: {where}"), err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(("text", "says"), [
    ("{", "not a readable result.json"),
    ("[" * 10000 + "]" * 10000, "nested deeper"),
    ('{"scenario": "s", "verdict": "pass", "x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
    ('{"scenario": "s", "verdict": "pass", "duration_s": NaN}', "NaN is not a number"),
    (_raw("duration_s", "1e400"), "duration_s: Infinity is out of range"),
    (_raw("exit_code", "1" + "0" * 400), "exit_code: 1000"),
    ('{"scenario": "s", "verdict": "pass", "exit_code": 1' + "0" * 5000 + "}", "not a readable"),
    ("[1, 2]", "not a gateway-chaos result.json"),
    ("\udcff", "not a readable"),
])
def test_broken_json_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                  says: str) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    code, err = _report(path, capsys)
    assert code == 2 and err.startswith(f"chaos: {path}: ") and says in err, err


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "MAX_BYTES", 1000)
    path = _write(tmp_path, FAIL_RUN)
    code, err = _report(path, capsys)
    assert code == 2 and "larger than a result.json can be" in err


def test_a_bad_baseline_stops_the_run_before_it_starts(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(FAIL_RUN)
    data["phase_stats"][0]["p99_ms"] = "slow"
    path = _write(tmp_path, data, "old.json")
    code = main(["run", "scenarios/backend-crash.yaml", "--baseline", str(path),
                 "--report-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: phase_stats[0].p99_ms: expected number or null" in err, err
    assert not (tmp_path / "reports").exists()


def test_every_degenerate_result_loads_back(tmp_path: Path) -> None:
    for name, result in degenerate().items():
        load_result(_write(tmp_path, result_json(result), f"{name}.json"))


# -- fuzz: any type mutation of a real result.json is exit 0 or 2, never a traceback ------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else []
    for key, value in items:
        out.extend(_paths(value, (*prefix, key)))
    return out


BASES = [FAIL_RUN, json.loads((RUNS / "pass" / "result.json").read_text(encoding="utf-8")),
         *(json.loads(result_json(r)) for r in degenerate().values())]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        where = draw(st.sampled_from(paths))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["delete", "any", "same", "same"]))
        if how == "delete" and isinstance(parent, dict) and len(where) > 1:
            del parent[where[-1]]
        elif how == "same":  # same type, odd value: most get through to the renderers
            parent[where[-1]] = draw(_same_type(parent[where[-1]]))
        else:
            parent[where[-1]] = draw(JSON_VALUES)
    return data


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool) or value is None:
        return st.sampled_from([True, False, None])
    if isinstance(value, int):
        return st.integers(min_value=-(10**7), max_value=10**7) | st.sampled_from([0, -1, 10**15])
    if isinstance(value, float):
        return st.floats(min_value=-1e7, max_value=1e7) | st.sampled_from([0.0, -0.0, 1e15, 5e-324])
    if isinstance(value, str):
        return st.text(max_size=20) | st.sampled_from(["", "open", "reset", "<b>&</b>"])
    if isinstance(value, list):
        return st.lists(st.sampled_from(value), max_size=4) if value else st.just([])
    if not value:
        return st.just({})
    return st.lists(st.sampled_from(sorted(value)), unique=True).map(
        lambda keep: {k: value[k] for k in keep})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_fuzz_chaos_report_is_exit_0_or_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          data: dict[str, Any]) -> None:
    path = _write(tmp_path, data)
    code, err = _report(path, capsys)
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith(f"chaos: {path}: ") and "Traceback" not in err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_fuzz_baseline_loading_is_a_result_or_bad_input(tmp_path: Path,
                                                        data: dict[str, Any]) -> None:
    path = _write(tmp_path, data)
    try:
        old = load_result(path)
    except ReportInputError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    checks = compare(old, recorded("fail"))
    render_text(regression_field(str(path), old, checks, 0.5))
