"""report.html seen from both sides (issue 18): the two-sided timeline, the inferred breaker,
the "Seen from the upstream" section and its drill-down; old results without a witness."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.report.html import render_compare, render_html
from chaos.report.junit import render_junit
from chaos.verdict.result import Result
from tests.fixtures.report_cases import RUNS, WITNESS_NOTE, hand_built, recorded, with_witness

VOID = {"meta", "br", "wbr", "hr", "img", "input", "link", "col", "area", "base", "source"}
SVG_LEAVES = {"rect", "line", "path", "circle", "polyline", "stop"}


class _Balance(HTMLParser):
    """Every element closed, in order (SVG leaves may self-close); every id once."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag not in VOID | SVG_LEAVES:
            self.errors.append(f"<{tag}/> self-closed")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def assert_valid(html: str, unique_ids: bool = True) -> None:
    checker = _Balance()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    if not unique_ids:
        return
    duplicates = {i for i in checker.ids if checker.ids.count(i) > 1}
    assert not duplicates, duplicates


def _chart(html: str) -> str:
    return html.split('id="timeline-rps"')[1].split("</svg>")[0]


def _height(svg: str) -> float:
    match = re.search(r'viewBox="0 0 \d+ (\d+)"', svg)
    assert match
    return float(match.group(1))


def test_two_sided_timeline_draws_both_bands_on_one_axis() -> None:
    result = with_witness()
    html = render_html(result)
    chart = _chart(html)
    assert "upstream attempts per second" in chart  # the chart's text alternative (aria-label)
    assert chart.count('class="attempts complete_2xx"') == 20  # baseline and recovery
    assert chart.count('class="attempts failed"') == 2 == chart.count('class="attempts abandoned"')
    assert chart.count('fill="#009E73"') > 28  # the client bars above are still drawn
    assert chart.count(">10s</text>") == 1  # one time axis
    # the fault window runs through both bands: its shade ends at the lower band's bottom
    shade = re.search(r'class="fault-shade" x="[\d.]+" y="(\d+)" width="[\d.]+" height="(\d+)"',
                      chart)
    assert shade and int(shade[1]) + int(shade[2]) > _height(chart) - 10
    assert chart.count('class="fault-window"') == len(result.faults)
    # one hover per second, over both bands, naming the upstream's attempts of that second
    assert chart.count('class="hover"') == 30
    assert "upstream: 60 attempts/s (abandoned by the gateway 10, failed 50)" in chart
    lower = chart.split('class="attempts')[1]
    assert "#D55E00" not in lower  # vermillion is a client reset, never an attempt
    assert 'id="attempt-legend"' in html and 'id="two-sided-note"' in html
    assert_valid(html)


def test_inferred_breaker_is_shaded_with_its_probes() -> None:
    html = render_html(with_witness())
    chart = _chart(html)
    assert chart.count('<g class="breaker-open">') == 1
    assert "breaker open (inferred from the upstream) from 12.10s to 20.50s, closed at 20.60s" in chart
    assert chart.count('<g class="breaker-probe">') == 2
    assert "half-open probe at 14.20s" in chart and "half-open probe at 17.30s" in chart
    table = html.split('id="breaker-inferred"')[1].split("</table>")[0]
    assert "12.10s" in table and "14.20s, 17.30s" in table and "20.60s" in table


def test_upstream_section_names_the_witness_and_the_mechanisms() -> None:
    html = render_html(with_witness())
    section = html.split('id="upstream"')[1].split('id="faults-heading"')[0]
    assert '<b id="witness-kind">tap</b>' in section and "<code>tap:backend</code>" in section
    assert "2 TLS and 1 unknown-protocol connections were counted per connection only" in section
    rows = section.split('id="mechanisms"')[1].split("</table>")[0].split("<tr")[2:]
    assert [re.search(r"<td>([^<]*)</td>", r)[1] for r in rows] == [  # type: ignore[index]
        "baseline", "fault", "recovery", "whole run"]
    fault = rows[1]
    assert "0.61×" in fault and "0.61 / 3" in fault and "0.50s / 0.52s" in fault and "120 (60.0%)" in fault
    assert '<td class="num flagged">⚠ 40</td>' in fault  # non-idempotent retries flagged
    assert "1 of 2, ⚠ 1 violation, min gap 0.20s" in fault
    assert 'id="attempt-seconds"' in section  # the lower band as a table


def test_drilldown_lists_requests_with_their_attempts_collapsed() -> None:
    html = render_html(with_witness())
    box = html.split('<details id="drilldown-box">')[1].split("</details>")[0]  # closed
    assert "2 client requests with the attempts each caused" in box and "158 more not kept" in box
    first = box.split('<tbody class="dd-request">')[1]
    assert "10.25s" in first and "chat (POST)" in first and "graceful_error" in first
    assert "612.0ms" in first and "3 attempts" in first
    assert [m for m in re.findall(r"↳ (\+[\d.]+s)", first)] == ["+0.000s", "+0.200s", "+0.400s"]
    assert first.count("<td>refused</td>") == 3 and first.count("<td>0.050s</td>") == 3
    assert "no upstream attempt: the gateway answered by itself" in box


def test_drilldown_is_bounded() -> None:
    result = with_witness()
    item = result.drilldown[0]
    many = {"request": item["request"], "attempts": item["attempts"] * 20}  # 60 attempts
    result.drilldown = [copy.deepcopy(many) for _ in range(300)]
    html = render_html(result)
    box = html.split('<details id="drilldown-box">')[1].split("</details>")[0]
    assert box.count('<tbody class="dd-request">') == 200
    assert box.count('class="dd-attempt"') == 200 * 11  # 10 shown and a "more" line each
    assert "50 more attempts not shown" in box and "258 more not kept" in box
    assert len(box.encode()) < 400_000


def test_no_witness_says_why_instead_of_an_empty_band() -> None:
    html = render_html(with_witness("none"))
    chart = _chart(html)
    assert '<g class="witness-none">' in chart and WITNESS_NOTE[:60] in chart
    assert 'class="attempts' not in chart and 'class="breaker-open"' not in chart
    assert _height(chart) < _height(_chart(render_html(with_witness()))) - 100  # a note, not a plot
    section = html.split('id="upstream"')[1].split('id="faults-heading"')[0]
    assert '<b id="witness-kind">none</b>' in section and WITNESS_NOTE in section
    assert 'id="mechanisms"' not in section and 'id="attempt-legend"' not in html
    assert_valid(html)


@pytest.mark.parametrize("make", [lambda: recorded("pass"), lambda: recorded("fail"), hand_built])
def test_results_without_a_witness_render_as_before(make: object) -> None:
    result: Result = make()  # type: ignore[operator]
    assert getattr(result, "witness", None) in (None, {})
    html = render_html(result)
    chart = _chart(html)
    assert 'id="upstream"' not in html and 'class="attempts' not in chart
    assert "upstream" not in chart and "witness" not in html
    assert 'aria-label="requests per second by outcome class"' in html
    assert_valid(html)


def test_partial_or_malformed_witness_fields_still_render() -> None:
    result = with_witness()
    result.witness = {"kind": "journal"}
    result.mechanisms = {"by_phase": {"fault": {"requests": "x"}, "gone": 3}}
    result.breaker_inferred = [{"start": None}, {"start": 3, "probes": ["a", 4]}]
    # a hand-edited file: wrong types on purpose
    result.attempt_timeline = [{"t": "bad"}, {"t": 2, "attempts": None}, 7]  # type: ignore[list-item]
    result.drilldown = [{"request": {}}, {"attempts": []}, "x"]  # type: ignore[list-item]
    result.drilldown_omitted = None  # type: ignore[assignment]
    html = render_html(result)
    assert '<b id="witness-kind">journal</b>' in html and "</html>" in html
    assert_valid(html)


def test_junit_names_the_witness_kind() -> None:
    assert '<property name="witness" value="tap" />' in render_junit(with_witness())
    assert 'name="witness"' not in render_junit(hand_built())


def test_compare_page_shows_both_runs_two_sided() -> None:
    html = render_compare(with_witness(), hand_built())
    assert html.count('class="attempts complete_2xx"') == 20  # the witnessed run only
    assert html.count('id="attempt-legend"') == 1  # its key under its chart
    assert_valid(html, unique_ids=False)  # both sides' charts share their ids (as before)


def test_a_result_json_from_before_the_witness_rerenders(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`chaos report` on a result.json with none of the witness keys: the page as before."""
    data = hand_built().to_dict()
    for key in ("witness", "mechanisms", "breaker_inferred", "attempt_timeline", "drilldown",
                "drilldown_omitted"):
        data.pop(key, None)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", str(path)]) == 0, capsys.readouterr().err
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="timeline-rps"' in html and 'id="upstream"' not in html
    assert 'class="attempts' not in html
    assert_valid(html)


def test_a_long_witnessed_run_stays_small() -> None:
    """One hour, both bands full, 200 drill-down requests of 15 attempts: under 1.5 MB."""
    result = with_witness(seconds=3600)
    result.timeline = [{"t": t, "total": 400, "ok": 300, "graceful_error": 90, "reset": 10,
                        "p50_ms": 10.0, "p95_ms": 90.0, "p99_ms": 300.0} for t in range(3600)]
    result.attempt_timeline = [{"t": t, "attempts": 400, "complete_2xx": 300, "error_status": 50,
                                "abandoned": 25, "failed": 25} for t in range(3600)]
    item = result.drilldown[0]
    result.drilldown = [copy.deepcopy({"request": item["request"], "attempts": item["attempts"] * 5})
                        for _ in range(200)]
    html = render_html(result)
    assert len(html.encode()) < 1_500_000
    chart = _chart(html)
    assert chart.count('class="hover"') <= 600 and chart.count('class="attempts failed"') <= 600


def test_a_recorded_witnessed_run_renders_both_sides(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A real backend-crash run with the tap (tests/fixtures/runs/witness, drill-down cut to
    12): the fields as the verdict writes them, re-rendered by `chaos report`."""
    assert main(["report", str(RUNS / "witness"), "--output", str(tmp_path / "r.html")]) == 0, \
        capsys.readouterr().err
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    chart = _chart(html)
    result = recorded("witness")
    assert result.witness["kind"] == "tap"
    assert chart.count('class="attempts complete_2xx"') >= 15  # baseline and recovery seconds
    assert chart.count('<g class="breaker-open">') == len(result.breaker_inferred) == 1
    assert chart.count('<g class="breaker-probe">') == len(result.breaker_inferred[0]["probes"])
    box = html.split('<details id="drilldown-box">')[1].split("</details>")[0]
    assert box.count('<tbody class="dd-request">') == 12 and "chat (POST)" in box
    first = result.drilldown[0]
    assert f'{first["request"]["latency_ms"]:.1f}ms' in box
    offset = first["attempts"][0]["t"] - first["request"]["t"]
    assert f"↳ +{offset:.3f}s" in box and "upstream reset" in box
    assert_valid(html)


def test_figures_without_a_gateway_probe_come_from_the_witness() -> None:
    """No request counter and no breaker probe (nginx): the cards, the figures and the
    phases table give what the upstream saw instead of n/a."""
    result = with_witness()
    result.breaker, result.breaker_transitions = [], []
    html = render_html(result)
    assert "<b>0.87×</b><span>retry amplification (seen upstream)</span>" in html
    assert '<b>1</b><span>breaker open intervals (seen upstream)</span>' in html
    assert "0.870 upstream attempts per client request, as the upstream witness saw them" in html
    assert "the gateway's own counter is not probed" in html
    phases = html.split('id="phases"')[1].split("</table>")[0]
    assert '<td class="num">0.61</td>' in phases  # the fault phase's retry ×
    assert "The upstream witness inferred 1 open interval" in html
    none = render_html(with_witness("none"))
    assert "n/a</b><span>retry amplification</span>" in none


def test_no_bar_runs_off_the_plot() -> None:
    """A real run's phases end a few ms into their last second: that second's bars, above
    and below the axis, stop at the plot's right edge (x 948 of 960)."""
    result = recorded("witness")
    assert result.phases[-1].end % 1 > 0 and len(result.timeline) > int(result.phases[-1].end)
    chart = _chart(render_html(result))
    bars = re.findall(r'<rect (?:class="attempts [a-z_0-9]+" )?x="([\d.]+)" y="[\d.]+" '
                      r'width="([\d.]+)" height="[\d.]+" fill="#', chart)
    assert len(bars) >= 50
    assert max(float(x) + float(w) for x, w in bars) <= 948.1  # 948 and the rounding of .1f


def test_a_gateway_without_resilience_seen_from_both_sides() -> None:
    """The docs' example run (tests/fixtures/runs/witness-fail: resilience off): resets at
    the client, failed attempts under them, no breaker inferred; vermillion only above."""
    html = render_html(recorded("witness-fail"))
    chart = _chart(html)
    assert 'class="attempts failed"' in chart and 'class="breaker-open"' not in chart
    upper, lower = chart.split('class="attempts', 1)
    assert 'fill="#D55E00"' in upper and "#D55E00" not in lower
    assert "<b>1.00×</b><span>retry amplification (seen upstream)</span>" in html
    assert_valid(html)


def test_a_journal_witness_says_what_it_cannot_see() -> None:
    result = with_witness()
    result.witness = {**result.witness, "kind": "journal", "sources": ["journal:backend"],
                      "connections": {}}
    html = render_html(result)
    assert '<b id="witness-kind">journal</b>' in html
    assert "only the attempts that reached the backend" in html and "<code>journal:backend</code>" in html
    assert 'id="witness-counted-only"' not in html
