"""Every result.json the engine can write renders: error runs, empty runs, odd samples."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.report.html import render_compare, render_html
from chaos.report.writer import write_reports
from chaos.verdict.baseline import compare, regression_field, render_text
from tests.fixtures.report_cases import EVIL, degenerate, hand_built

CASES = degenerate()


@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_results_write_every_report(tmp_path: Path, name: str) -> None:
    paths = write_reports(CASES[name], tmp_path / name)
    html = paths["html"].read_text(encoding="utf-8")
    assert f">{CASES[name].verdict.upper()}<" in html
    assert "</html>" in html
    assert "<testsuites" in paths["junit"].read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_results_rerender_with_chaos_report(tmp_path: Path, name: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_reports(CASES[name], tmp_path / name)
    paths["html"].unlink()
    assert main(["report", str(paths["json"])]) == 0, capsys.readouterr().err
    assert paths["html"].exists()
    json.loads(paths["json"].read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_results_compare_with_a_full_one(name: str) -> None:
    html = render_compare(hand_built(), CASES[name])
    assert "</html>" in html


def test_evidence_charts_stay_small_and_escaped() -> None:
    html = render_html(CASES["spread-capture"])
    assert len(html) < 400_000
    assert EVIL not in html and 'onload="' not in html



@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_results_serve_as_baselines(name: str) -> None:
    for old, new in ((CASES[name], hand_built()), (hand_built(), CASES[name])):
        checks = compare(copy.deepcopy(old), copy.deepcopy(new))
        assert render_text(regression_field("old.json", old, checks, 0.5))
