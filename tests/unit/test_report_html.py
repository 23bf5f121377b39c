"""report.html: content, escaping, self-containment and size."""

from __future__ import annotations

import re

import pytest

from chaos.report import derive
from chaos.report.html import render_html
from chaos.verdict.result import FaultRecord, PhaseStats, PhaseWindow
from tests.fixtures.report_cases import hand_built, recorded, with_evidence, with_evil_text


def _assert_self_contained(html: str) -> None:
    lowered = html.lower()
    for forbidden in ("<script", "<link", "@import", "<iframe", "<img", "<object", "<embed"):
        assert forbidden not in lowered, forbidden
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//|file:)""", lowered)
    # url(#id) points inside the page (the fault hatch pattern); any other url( could fetch
    assert not re.search(r"url\((?!#[a-z0-9_-]+\))", lowered)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


@pytest.mark.parametrize("run", ["pass", "fail"])
def test_recorded_runs_render_everything(run: str) -> None:
    result = recorded(run)
    html = render_html(result)
    _assert_self_contained(html)
    assert re.search(rf'id="verdict"[^>]*>{result.verdict.upper()}<', html)
    for section in ('id="timeline-rps"', 'id="timeline-latency"', 'id="timeline-breaker"',
                    'id="assertions"', 'id="phases"', 'id="breaker-transitions"', 'id="faults"',
                    'id="scenario-yaml"', 'id="versions"', 'id="score"', 'id="rerun"'):
        assert section in html, section
    rps = html.split('id="timeline-rps"')[1].split("</svg>")[0]
    restores = [f for f in result.faults if f.kind == "restore"]  # start: a marker, no window
    assert restores and rps.count('class="restore-mark"') == len(restores)
    assert rps.count('class="fault-window"') == len(result.faults) - len(restores)
    for fault in result.faults:
        assert fault.description in rps
    assert html.count('class="fault-logs"') == sum(1 for f in result.faults if f.logs)
    assert derive.SCORE_FORMULA.split(",")[0] in html
    for key in ("python", "docker engine", "gateway-chaos", "locust"):
        assert f"<th>{key}</th>" in html
    assert html.count("<tr class=\"failed\">") == sum(a.status == "fail" for a in result.assertions)


def test_assertion_table_shows_status_ci_and_explanation() -> None:
    html = render_html(hand_built())
    table = html.split('id="assertions"')[1].split("</table>")[0]
    assert "98.00% to 100.00%" in table  # the confidence interval of a rate
    assert table.count('class="passed"') == 1 and table.count('class="failed"') == 1
    assert table.count('class="inconclusive"') == 1 and "? inconclusive" in table
    assert "clients saw a TCP reset" in table


def test_missing_optional_figures_render_as_na() -> None:
    result = hand_built()
    result.breaker = []
    result.upstream = []
    html = render_html(result)
    assert "retry amplification" in html and "n/a</b><span>retry amplification" in html
    assert "n/a: the scenario does not probe a circuit breaker" in html
    assert 'id="timeline-breaker"' not in html


def test_every_text_is_escaped() -> None:
    html = render_html(with_evil_text(hand_built()))
    assert "<script" not in html.lower()
    assert "Crash test &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    # description, yaml, command, service log, fault logs, fault labels, messages, error, phase
    assert html.count("&lt;script&gt;") >= 10


def test_control_characters_and_colour_codes_are_cleaned() -> None:
    result = hand_built()
    result.logs = {"gateway": "\x1b[31mERROR\x1b[0m upstream\x00 refused"}
    html = render_html(result)
    assert "\x1b" not in html and "\x00" not in html and "ERROR upstream\ufffd refused" in html


def test_empty_and_errored_runs_render() -> None:
    result = hand_built()
    result.verdict, result.exit_code, result.error = "error", 3, "Docker is not running"
    result.phases, result.faults, result.timeline, result.phase_stats = [], [], [], []
    result.assertions, result.breaker = [], []
    html = render_html(result)
    assert "ERROR" in html and "Docker is not running" in html
    assert "no assertions were evaluated" in html and "no fault was injected" in html
    assert ">n/a</b>" in html  # no score for a run that errored


def test_a_long_run_stays_small() -> None:
    """One hour of traffic, 40 faults, chatty logs: the page stays well under 1.5 MB."""
    seconds = 3600
    result = hand_built(seconds=seconds)
    result.timeline = [{"t": t, "total": 400, "ok": 300, "ok_after_retry": 30, "graceful_error": 40,
                        "reset": 10, "refused": 5, "read_timeout": 5, "closed": 5, "truncated": 5,
                        "p50_ms": 10.0 + t % 7, "p95_ms": 90.0 + t % 13, "p99_ms": 300.0 + t % 17}
                       for t in range(seconds)]
    result.phases = [PhaseWindow(f"phase-{i}", i * 90.0, (i + 1) * 90.0, [f"latency {i}ms"])
                     for i in range(40)]
    result.phase_stats = [PhaseStats(w.name, 36000, {"ok": 30000, "reset": 6000}, 0.83, 10.0,
                                     90.0, 300.0, 900.0, 400.0) for w in result.phases]
    line = "2024-01-01T00:00:00.000000000Z 2024-01-01 00:00:00,000 gateway POST /v1/chat 200 3.1ms"
    result.faults = [FaultRecord(w.name, f"latency {i}ms on proxy backend", w.start, w.end,
                                 logs={s: "\n".join([line] * 21) for s in ("gateway", "backend")})
                     for i, w in enumerate(result.phases)]
    result.logs = {s: "\n".join([line] * 60) for s in ("gateway", "backend", "toxiproxy")}
    result.breaker = [(t / 4, float((t // 400) % 3)) for t in range(seconds * 4)]
    html = render_html(result)
    size = len(html.encode())
    assert size < 1_500_000, f"{size} bytes"
    rps = html.split('id="timeline-rps"')[1].split("</svg>")[0]
    assert rps.count('class="fault-window"') == 40
    assert rps.count('class="hover"') <= 600  # bucketed


def test_score_terms_and_their_sum_are_on_the_page() -> None:
    html = render_html(hand_built())
    table = html.split('id="score-terms"')[1].split("</table>")[0]
    for term in ("A", "G", "T"):
        assert f"<td><b>{term}</b></td>" in table
    assert "10 failing of 20 s in phases fault, recovery" in table
    assert "score = round(20.00 + 17.00 + 20.00) = 57" in html
    assert "A 0.50 · G 0.85 · T 0.50" in html  # on the score card too


def test_expected_errors_apart_and_events_collapsed() -> None:
    html = render_html(with_evidence("pass"))
    assert '<details id="evidence-events-box">' in html  # closed: no `open` attribute
    assert "Failed requests: none" in html
    assert "1973 graceful errors (5xx/429 with a body) in phases fault, recovery" in html
    failing = render_html(with_evidence("fail"))
    assert "Failed requests, with context (12 shown of 158)" in failing
    assert 'id="expected-samples"' not in failing


def test_bounds_and_numbers_do_not_wrap() -> None:
    html = render_html(recorded("pass"))
    assert '<code class="bound">&gt;= 0.99</code>' in html
    assert "td code.bound,.nowrap,td.num{white-space:nowrap" in html
    assert '<div class="scroll" id="phases-box">' in html
