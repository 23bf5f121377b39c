"""`chaos report`: re-render from result.json, and the side-by-side comparison of two runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from chaos.cli import main
from chaos.report.html import render_compare
from chaos.report.writer import result_json
from tests.fixtures.report_cases import RUNS, hand_built, with_evil_text


def test_report_rerenders_html_from_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    shutil.copytree(RUNS / "fail", run)
    assert main(["report", str(run / "result.json")]) == 0
    html = (run / "report.html").read_text()
    assert 'id="verdict"' in html and ">FAIL<" in html and 'id="timeline-rps"' in html
    assert str(run / "report.html") in capsys.readouterr().out


def test_compare_cli(tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert main(["report", "--compare", str(RUNS / "pass"), str(RUNS / "fail" / "result.json"),
                 "-o", str(out)]) == 0
    html = out.read_text()
    assert "<script" not in html.lower()
    assert html.count('id="timeline-rps"') == 2
    assert ">PASS<" in html and ">FAIL<" in html
    # an assertion that passed before and fails now is marked as changed
    assert '<tr class="changed"><td>fault</td><td>resets</td>' in html


def test_compare_lines_up_assertions_and_phases() -> None:
    old, new = hand_built(status="pass"), hand_built(status="fail")
    new.assertions = new.assertions[1:]  # one assertion only in the old run
    html = render_compare(old, new)
    rows = html.split('id="assertions"')[1].split("</table>")[0]
    assert rows.count("<tr class=") == 3 and "absent" in rows
    assert rows.count('class="changed"') == 2  # resets pass -> fail, success_rate present -> absent
    body = html.split('id="phases"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 3  # one row per phase


def test_compare_escapes_text() -> None:
    html = render_compare(hand_built(), with_evil_text(hand_built()))
    assert "<script" not in html.lower() and "&lt;script&gt;" in html


def test_report_cli_bad_input(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert main(["report", "--compare", str(RUNS / "pass")]) == 2
    bad = tmp_path / "result.json"
    bad.write_text(result_json(hand_built()).replace('"schema_version": 1', '"schema_version": 7'))
    assert main(["report", str(bad)]) == 2
