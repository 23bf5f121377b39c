"""TLS handshakes in result.json and report.html (issue 22, chaos.verdict.tls_figures,
chaos.report.tls, chaos.report.tls_chart): per phase the handshake count, p50/p95/p99 of
the completed handshakes' time and the failures by reason; per second the failures, marked
on the timeline with their reasons; nothing of it for a run without TLS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from chaos.engine import run_scenario
from chaos.report.charts import COLORS
from chaos.report.html import render_html
from chaos.report.schema import result_schema
from chaos.report.tls_chart import MARK_COLOR
from chaos.report.writer import load_result, result_json
from chaos.scenario.loader import load_scenario
from chaos.verdict import tls_figures as tf
from chaos.verdict.histogram import percentile
from chaos.verdict.result import PhaseWindow, Result
from tests.fixtures.recorded_session import RecordedSession
from tests.fixtures.report_cases import hand_built

T0 = 1_764_640_000.0
EXPIRED = "certificate verify failed: certificate has expired"
VERSION = "tlsv1 alert protocol version"
RESET_IN = "ConnectionResetError during the TLS handshake"
CLOSED_IN = "closed during the TLS handshake (no alert)"


def rec(
    t: float, phase: str, outcome: str = "ok", detail: str = "200", tls_ms: float | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "t": T0 + t,
        "phase": phase,
        "name": "get",
        "outcome": outcome,
        "status": 200 if outcome == "ok" else 0,
        "latency_ms": 20.0,
        "detail": detail,
    }
    if tls_ms is not None:
        record["tls_ms"] = tls_ms
    return record


def records() -> list[dict[str, Any]]:
    """hand_built's phases (baseline 0-10 s, fault 10-20 s, recovery 20-30 s)."""
    out = [rec(-1.0, "warmup", tls_ms=3.0) for _ in range(4)]  # not judged
    out += [rec(i * 0.5, "baseline", tls_ms=float(i + 1)) for i in range(10)]
    out += [rec(i * 0.1, "baseline") for i in range(30)]  # reused connections: no handshake
    out += [rec(10 + i * 0.05, "fault", tls_ms=float(i + 1)) for i in range(100)]
    out += [rec(12.2, "fault", "tls_handshake_failed", EXPIRED, tls_ms=4.0) for _ in range(3)]
    out += [rec(13.5, "fault", "tls_handshake_failed", VERSION, tls_ms=1.0) for _ in range(2)]
    out += [
        rec(13.7, "fault", "reset", RESET_IN, tls_ms=2.0),
        rec(15.1, "fault", "closed", CLOSED_IN, tls_ms=2.0),
        rec(15.2, "fault", "closed", "RemoteDisconnected"),
    ]  # after the handshake: no TLS
    out += [rec(20 + i, "recovery") for i in range(5)]  # no new connection in recovery
    return out


def write(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "requests.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"t": 1, "pha', "utf-8")
    return path  # with a torn last line, as a killed writer leaves it


def tls_result(tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> Result:
    result = hand_built()
    path = write(tmp_path, records() if rows is None else rows)
    tf.store_tls(result, tf.tls_figures(path, T0, 30.0, [w.name for w in result.phases]))
    return result


def test_per_phase_handshakes_percentiles_and_failures_by_reason(tmp_path: Path) -> None:
    tls = tls_result(tmp_path).tls
    baseline, fault, recovery = (tls["by_phase"][n] for n in ("baseline", "fault", "recovery"))
    assert (baseline["handshakes"], baseline["completed"], baseline["failed"]) == (10, 10, 0)
    assert (
        baseline["tls_p50_ms"],
        baseline["tls_p95_ms"],
        baseline["tls_p99_ms"],
        baseline["tls_max_ms"],
    ) == (5.0, 10.0, 10.0, 10.0)
    assert baseline["failures"] == []
    # failed handshakes' times stay out of the percentiles (1.0 ms would pull p50 down)
    assert (fault["handshakes"], fault["completed"], fault["failed"]) == (107, 100, 7)
    assert (fault["tls_p50_ms"], fault["tls_p95_ms"], fault["tls_p99_ms"], fault["tls_max_ms"]) == (
        50.0,
        95.0,
        99.0,
        100.0,
    )
    assert fault["failures"] == [
        {"outcome": "tls_handshake_failed", "reason": EXPIRED, "count": 3},
        {"outcome": "tls_handshake_failed", "reason": VERSION, "count": 2},
        {"outcome": "closed", "reason": CLOSED_IN, "count": 1},
        {"outcome": "reset", "reason": RESET_IN, "count": 1},
    ]
    assert recovery == {
        "handshakes": 0,
        "completed": 0,
        "failed": 0,
        "tls_p50_ms": None,
        "tls_p95_ms": None,
        "tls_p99_ms": None,
        "tls_max_ms": None,
        "failures": [],
    }
    whole = tls["whole"]
    times = sorted([float(i + 1) for i in range(10)] + [float(i + 1) for i in range(100)])
    assert (whole["handshakes"], whole["failed"]) == (117, 7)
    assert [whole[f"tls_p{q}_ms"] for q in (50, 95, 99)] == [percentile(times, q) for q in (50, 95, 99)]
    assert sum(f["count"] for f in whole["failures"]) == 7
    assert tls["outside_phases"] == 4


def test_per_second_failures_carry_their_reasons(tmp_path: Path) -> None:
    rows = {row["t"]: row for row in tls_result(tmp_path).tls_timeline}
    assert 0 in rows and -1 not in rows  # warm-up (t < 0) is not on the axis
    assert rows[12]["failed"] == 3 and rows[12]["failures"] == [
        {"outcome": "tls_handshake_failed", "reason": EXPIRED, "count": 3}
    ]
    assert rows[12]["handshakes"] == 20 + 3  # the fault phase completes 20 a second too
    assert [f["reason"] for f in rows[13]["failures"]] == [VERSION, RESET_IN]
    assert rows[15]["failed"] == 1  # the RemoteDisconnected after the handshake is not one
    assert [t for t, row in rows.items() if row["failed"]] == [12, 13, 15]


def test_reasons_are_bounded_in_number_and_length(tmp_path: Path) -> None:
    long = "x" * 5000
    rows = [rec(10.0, "fault", "tls_handshake_failed", f"alert {i}") for i in range(50)]
    rows.append(rec(11.0, "fault", "tls_handshake_failed", long))
    tls = tls_result(tmp_path, rows).tls
    failures = tls["by_phase"]["fault"]["failures"]
    assert len(failures) == tf.REASONS_KEPT + 1 and tls["by_phase"]["fault"]["failed"] == 51
    assert {
        "outcome": "tls_handshake_failed",
        "reason": tf.OTHER_REASONS,
        "count": 51 - tf.REASONS_KEPT,
    } in failures
    assert all(len(f["reason"]) <= tf.REASON_CHARS for f in failures)
    [second] = [r for r in tls_result(tmp_path, rows).tls_timeline if r["t"] == 10]
    assert len(second["failures"]) == tf.SECOND_REASONS_KEPT + 1


def test_the_result_with_tls_figures_is_schema_valid_and_reads_back(tmp_path: Path) -> None:
    result = tls_result(tmp_path)
    data = json.loads(result_json(result))
    jsonschema.validate(data, result_schema())
    (tmp_path / "result.json").write_text(result_json(result), encoding="utf-8")
    back = load_result(tmp_path / "result.json")  # chaos.report.validate's checks
    assert back.tls == result.tls and back.tls_timeline == result.tls_timeline
    bad = {**data, "tls": {**data["tls"], "whole": {**data["tls"]["whole"], "failed": -1}}}
    errors = list(jsonschema.Draft202012Validator(result_schema()).iter_errors(bad))
    assert errors, "a negative failure count must not validate"


def test_a_run_without_tls_has_no_tls_figures_nor_section(tmp_path: Path) -> None:
    result = tls_result(
        tmp_path,
        [rec(i * 0.5, "baseline") for i in range(20)] + [rec(12.0, "fault", "reset", "ConnectionResetError")],
    )
    assert result.tls == {} and result.tls_timeline == []
    html = render_html(result)
    for mark in ('id="tls"', 'id="tls-phases"', 'id="tls-legend"', 'class="tls-failure"'):
        assert mark not in html
    data = hand_built().to_dict()
    data.pop("tls"), data.pop("tls_timeline")  # a result.json written before TLS figures
    assert 'id="tls"' not in render_html(Result.from_dict(json.loads(json.dumps(data))))


def test_the_report_shows_the_tls_table_and_marks_failures_on_the_timeline(tmp_path: Path) -> None:
    html = render_html(tls_result(tmp_path))
    table = html.split('id="tls-phases"')[1].split("</table>")[0]
    assert '<td>fault</td><td class="num">107</td><td class="num">100</td>' in table
    assert "50 ms" in table and "95 ms" in table and "99 ms" in table
    assert f"{EXPIRED}: 3" in table and f"reset: {RESET_IN}: 1" in table
    assert "4 handshakes ran outside the judged phases" in html
    chart = html.split('id="timeline-rps"')[1].split("</svg>")[0]
    marks = chart.split('class="tls-failure"')[1:]
    assert len(marks) == 3  # seconds 12, 13 and 15
    assert f"t=12s\nTLS handshakes failed: 3 of 23: {EXPIRED} (3)</title>" in marks[0]
    hover = [h for h in chart.split('class="hover"')[1:] if "t=13s:" in h][0]
    assert f"TLS handshakes failed: 3 of 23: {VERSION} (2); reset: {RESET_IN} (1)" in hover
    legend = html.split('id="tls-legend"')[1].split("</div>")[0]
    assert f"{EXPIRED} (3)" in legend and f"closed: {CLOSED_IN} (1)" in legend
    # the section sits with the other per-phase sections, the legend under the timeline
    assert (
        html.index('id="timeline-rps"')
        < html.index('id="tls-legend"')
        < html.index('id="assertions-heading"')
        < html.index('id="tls"')
    )
    assert COLORS["tls_handshake_failed"] == MARK_COLOR


def test_reasons_from_the_server_are_escaped_everywhere(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> & more'
    html = render_html(tls_result(tmp_path, [rec(11.0, "fault", "tls_handshake_failed", evil)]))
    assert "<script>" not in html and "<img" not in html
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; more"
    table = html.split('id="tls-phases"')[1].split("</table>")[0]
    assert escaped in table  # Jinja2's autoescape
    svg_escaped = escaped.replace("&#34;", "&quot;")  # html.escape's spelling
    assert svg_escaped in html.split('id="tls-legend"')[1].split("</div>")[0]
    chart = html.split('id="timeline-rps"')[1].split("</svg>")[0]
    assert chart.count(svg_escaped) == 2  # the mark's title and the column's hover title


def test_long_runs_merge_failures_into_the_chart_columns(tmp_path: Path) -> None:
    result = hand_built()
    result.phases = [PhaseWindow("baseline", 0.0, 1200.0)]  # 2 s a column
    rows = [
        rec(100.2, "baseline", "tls_handshake_failed", VERSION),
        rec(101.7, "baseline", "tls_handshake_failed", VERSION),
    ]
    path = write(tmp_path, rows)
    tf.store_tls(result, tf.tls_figures(path, T0, 1200.0, ["baseline"]))
    chart = render_html(result).split('id="timeline-rps"')[1].split("</svg>")[0]
    [mark] = chart.split('class="tls-failure"')[1:]
    assert f"t=100-102s\nTLS handshakes failed: 2 of 2: {VERSION} (2)" in mark


SCENARIO = """\
name: tls-figures
services:
  gateway: {build: docker/gateway, port: 8000}
load: {target: gateway, users: 2, requests: [{name: get, path: /}]}
phases: [{name: steady, duration: 4s}]
assertions: [{phase: steady, min_requests: 0}]
"""


class TlsRecords(RecordedSession):
    """A session that 'ran' 4 s of load over TLS: what the locustfile would have written."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, 4.0)

    def run(self) -> None:
        rows = [{**rec(i * 0.1, "steady", tls_ms=2.0 + i), "t": self.t0 + i * 0.1} for i in range(20)]
        rows.append({**rec(2.5, "steady", "tls_handshake_failed", EXPIRED), "t": self.t0 + 2.5})
        self.write(rows)


def test_a_run_stores_the_tls_figures_in_result_json_and_the_report(tmp_path: Path) -> None:
    path = tmp_path / "tls-figures.yaml"
    path.write_text(SCENARIO)
    result = run_scenario(
        load_scenario(path),
        file=str(path),
        report_root=tmp_path / "reports",
        quiet=True,
        session_factory=lambda s, i, d, b: TlsRecords(d),
    )
    saved = json.loads((Path(result.report_dir) / "result.json").read_text())
    steady = saved["tls"]["by_phase"]["steady"]
    assert (steady["handshakes"], steady["failed"], steady["tls_p50_ms"]) == (21, 1, 11.0)
    assert saved["tls_timeline"][2]["failures"][0]["reason"] == EXPIRED
    html = (Path(result.report_dir) / "report.html").read_text()
    assert 'id="tls-phases"' in html and f"{EXPIRED}: 1" in html


def test_a_tls_run_whose_phases_ran_no_handshake_says_so(tmp_path: Path) -> None:
    """Every connection opened in the warm-up and kept: the phases met no handshake."""
    rows = [rec(-1.0, "warmup", tls_ms=3.0) for _ in range(10)]
    rows += [rec(i * 0.1, "baseline") for i in range(50)]
    result = tls_result(tmp_path, rows)
    assert result.tls["outside_phases"] == 10 and result.tls["whole"]["handshakes"] == 0
    html = render_html(result)
    assert 'id="tls-phases"' in html and 'id="tls-none-judged"' in html
    assert "10 handshakes ran outside the judged phases" in html
    assert 'id="tls-none-judged"' not in render_html(tls_result(tmp_path))
