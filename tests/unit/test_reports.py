"""result.json, junit.xml and report.html written from a hand-built Result."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.report.writer import write_reports
from chaos.verdict.result import (
    AssertionResult,
    FaultRecord,
    PhaseStats,
    PhaseWindow,
    Result,
)

EVIL = "<script>alert(1)</script>"


def make_result(passing: bool, **overrides: object) -> Result:
    assertions = [
        AssertionResult("baseline", "success_rate", ">= 0.99", "1.0000", True, ""),
        AssertionResult("fault", "graceful_errors", "> 0", "42", True, ""),
    ]
    if not passing:
        assertions += [
            AssertionResult("fault", "resets", "== 0", "17", False,
                            "17 of 120 requests during fault: clients saw a TCP reset; a "
                            "resilient gateway answers 502/503 with a body (expected == 0)"),
            AssertionResult("fault", "p99", "< 1s", "2400.0ms", False,
                            "p99 latency was 2400.0ms during fault, expected < 1s"),
        ]
    timeline = []
    for second in range(30):
        row: dict[str, object] = {"t": second, "total": 10, "ok": 10 if second < 10 else 5,
                                  "reset": 0 if second < 10 else 2,
                                  "graceful_error": 0 if second < 10 else 3}
        row.update({"p50_ms": 12.0, "p95_ms": 40.0, "p99_ms": 80.0})
        timeline.append(row)
    result = Result(
        scenario="backend-crash", file="scenarios/backend-crash.yaml", run_id="20240101-000000-ab12",
        started_at="2024-01-01T00:00:00+00:00", duration_s=31.4,
        verdict="pass" if passing else "fail", exit_code=0 if passing else 1,
        description="The backend dies under load.", provider="embedded",
        images={"gateway": "gateway-chaos/gateway:abc123"},
        command="chaos run scenarios/backend-crash.yaml",
        phases=[PhaseWindow("baseline", 0.0, 10.0), PhaseWindow("fault", 10.0, 20.0,
                                                                ["kill container backend"]),
                PhaseWindow("recovery", 20.0, 30.0, ["start container backend"])],
        faults=[FaultRecord("fault", "kill container backend", 10.0, 20.0),
                FaultRecord("recovery", "start container backend", 20.0, None)],
        phase_stats=[
            PhaseStats("baseline", 100, {"ok": 100}, 1.0, 12.0, 40.0, 80.0, 95.0, 10.0),
            PhaseStats("fault", 120, {"ok": 61, "graceful_error": 42, "reset": 17}, 0.51,
                       12.0, 900.0, 2400.0, 3000.0, 12.0),
            PhaseStats("recovery", 0, {}, None, None, None, None, None, 0.0),
        ],
        assertions=assertions, timeline=timeline,
        breaker=[(0.0, 0.0), (11.2, 1.0), (21.0, 2.0), (22.0, 0.0)],
        logs={"gateway": "INFO started\nWARN upstream down"},
        scenario_yaml="name: backend-crash\n",
    )
    for key, value in overrides.items():
        setattr(result, key, value)
    return result


def _write(tmp_path: Path, result: Result) -> dict[str, Path]:
    run_dir = tmp_path / "reports" / f"{result.scenario}-{result.run_id}"
    paths = write_reports(result, run_dir)
    assert set(paths) == {"json", "junit", "html"}
    for path in paths.values():
        assert path.parent == run_dir and path.is_file()
    return paths


@pytest.mark.parametrize("passing", [True, False], ids=["pass", "fail"])
def test_result_json(tmp_path: Path, passing: bool) -> None:
    paths = _write(tmp_path, make_result(passing))
    data = json.loads(paths["json"].read_text())
    assert data["verdict"] == ("pass" if passing else "fail")
    assert data["exit_code"] == (0 if passing else 1)
    assert data["scenario"] == "backend-crash"
    assert [s["name"] for s in data["phase_stats"]] == ["baseline", "fault", "recovery"]
    assert data["phase_stats"][1]["counts"] == {"ok": 61, "graceful_error": 42, "reset": 17}
    assert data["phase_stats"][2]["success_rate"] is None
    assert len(data["assertions"]) == (2 if passing else 4)
    for item in data["assertions"]:
        assert set(item) >= {"phase", "kind", "bound", "observed", "passed", "message"}
    failed = [a for a in data["assertions"] if not a["passed"]]
    assert len(failed) == (0 if passing else 2)
    assert data["schema_version"] == 1
    assert data["breaker"][1] == [11.2, 1.0]


@pytest.mark.parametrize("passing", [True, False], ids=["pass", "fail"])
def test_junit(tmp_path: Path, passing: bool) -> None:
    result = make_result(passing)
    paths = _write(tmp_path, result)
    root = ET.parse(paths["junit"]).getroot()
    suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "backend-crash"
    cases = suite.findall("testcase")
    assert len(cases) == len(result.assertions)
    assert suite.get("tests") == str(len(result.assertions))
    assert suite.get("failures") == str(len(result.failed_assertions))
    assert suite.get("errors") == "0"
    for case, item in zip(cases, result.assertions, strict=True):
        assert item.kind in (case.get("name") or "")
        assert item.phase in (case.get("classname") or "")
        failures = case.findall("failure")
        if item.passed:
            assert failures == [] and case.findall("error") == []
        else:
            assert len(failures) == 1
            message = failures[0].get("message") or ""
            assert item.observed in message and item.bound in message, message
            assert item.observed in (failures[0].text or "")
            assert item.bound in (failures[0].text or "")


def test_junit_error_verdict_has_an_error_case(tmp_path: Path) -> None:
    result = make_result(True, verdict="error", exit_code=3, assertions=[],
                         error="service 'backend' did not become ready: timed out after 60s")
    root = ET.parse(_write(tmp_path, result)["junit"]).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    errors = suite.findall("testcase/error")
    assert len(errors) == 1
    assert "did not become ready" in (errors[0].get("message") or "")


def test_junit_stays_well_formed_with_control_characters(tmp_path: Path) -> None:
    result = make_result(True, verdict="error", exit_code=3, assertions=[],
                         error="service 'gateway' did not become ready: timed out\n"
                               "--- last log lines of gateway ---\n"
                               "\x1b[31mERROR\x1b[0m upstream refused")
    ET.parse(_write(tmp_path, result)["junit"])


@pytest.mark.parametrize("passing", [True, False], ids=["pass", "fail"])
def test_html_verdict_and_self_contained(tmp_path: Path, passing: bool) -> None:
    html = _write(tmp_path, make_result(passing))["html"].read_text(encoding="utf-8")
    verdict = "PASS" if passing else "FAIL"
    assert re.search(rf'id="verdict"[^>]*>{verdict}<', html)
    assert f"<title>backend-crash: {verdict}" in html
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<link" not in lowered and "@import" not in lowered and "<iframe" not in lowered
    # Nothing is fetched: no src/href/url() pointing anywhere, and the only http URI is
    # the SVG namespace name (an identifier, never dereferenced).
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", lowered)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", lowered)
    assert set(re.findall(r"https?://[^\s\"'<>)]*", html)) <= {"http://www.w3.org/2000/svg"}
    assert "<svg" in html, "charts are inline SVG"
    for name in ("baseline", "fault", "recovery"):
        assert name in html
    if not passing:
        assert "2400.0ms" in html and "p99 latency was 2400.0ms during fault" in html
        assert html.count('class="failed"') == 2


def test_html_escapes_scenario_text(tmp_path: Path) -> None:
    result = make_result(False, description=f"Crash test {EVIL} & more",
                         scenario_yaml=f"description: {EVIL}\n", command=f"chaos run '{EVIL}'",
                         logs={"gateway": EVIL},
                         faults=[FaultRecord("fault", EVIL, 10.0, 20.0)])
    html = _write(tmp_path, result)["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "Crash test &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert html.count("&lt;script&gt;") >= 4


def test_html_escapes_phase_names_in_charts(tmp_path: Path) -> None:
    result = make_result(True, phases=[PhaseWindow(EVIL, 0.0, 10.0, [EVIL])])
    html = _write(tmp_path, result)["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower()


def test_reports_for_an_empty_run(tmp_path: Path) -> None:
    """An interrupted run with no data still gets all three reports."""
    result = make_result(True, verdict="interrupted", exit_code=130, assertions=[],
                         phase_stats=[], timeline=[], breaker=[], phases=[], faults=[],
                         error="the run was interrupted; everything it created was removed")
    paths = _write(tmp_path, result)
    assert json.loads(paths["json"].read_text())["verdict"] == "interrupted"
    ET.parse(paths["junit"])
    html = paths["html"].read_text(encoding="utf-8")
    assert "INTERRUPTED" in html and "no assertions were evaluated" in html


def test_latest_link_points_at_the_newest_run(tmp_path: Path) -> None:
    first = make_result(True, run_id="run-1")
    second = make_result(False, run_id="run-2")
    _write(tmp_path, first)
    _write(tmp_path, second)
    latest = tmp_path / "reports" / "backend-crash-latest"
    assert latest.is_symlink()
    assert json.loads((latest / "result.json").read_text())["run_id"] == "run-2"
    assert (tmp_path / "reports" / "backend-crash-run-1" / "result.json").exists()
