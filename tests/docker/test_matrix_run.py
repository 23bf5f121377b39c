"""`chaos matrix` over a real `chaos run` (~15 s): one minimal scenario on the reference
gateway profile, on Docker. The cell's verdict, the gateway's version from the run's own
result.json, and index.html's link to that run's report.html. And index.html in Debian's
Chromium (as test_report_layout.py does): a wide matrix scrolls inside its box, every cell
says its verdict in a word.

(The fast layer's loopback stack cannot serve this: `chaos run` has no command-line switch
for it, and a profile replaces the load target with a built image.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.matrix import html, store
from tests.fixtures.scenarios import write_scenario

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHAOS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def test_one_real_cell_on_the_reference_profile(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s", "tiny.yaml")
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "chaos.cli", "matrix", str(scenario),
                           "--gateway", "reference:default", "--id", "t", "--report-dir",
                           str(reports), "--cell-timeout", "240"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = reports / "matrix-t"
    data = json.loads((folder / "matrix.json").read_text())
    (cell,) = data["cells"]
    assert (cell["scenario"], cell["gateway"], cell["verdict"], cell["exit_code"]) == (
        "tiny", "reference:default", "pass", 0), cell
    assert (folder / cell["report"]).is_file()
    assert cell["report"].startswith("tiny/reference-default/")
    (column,) = data["columns"]
    assert column["version"] and column["version"].startswith("reference "), column
    assert column["images"].get("gateway", "").startswith("gateway-chaos/"), column
    assert f'href="{cell["report"]}"' in (folder / "index.html").read_text()


def _wide_matrix() -> store.Matrix:
    """4 scenarios × 8 profiles, long failure messages: wider than a laptop screen."""
    gateways = [f"{name}:{cfg}" for name in ("nginx", "haproxy", "caddy", "traefik")
                for cfg in ("stock", "hardened")]
    matrix = store.Matrix(id="w", harness="0.1.0+x", started_at="2026-12-02T00:00:00+00:00",
                          updated_at="2026-12-02T01:00:00+00:00",
                          scenarios=["backend-crash", "backend-reset", "slow-backend", "x"],
                          gateways=gateways)
    verdicts = ["pass", "fail", "inconclusive", "error"]
    for i, scenario in enumerate(matrix.scenarios[:3]):
        for j, gateway in enumerate(gateways):
            verdict = verdicts[(i + j) % 4]
            failure = store.FirstFailure(
                phase="fault", kind="breaker.opens_within", observed="never", bound="<= 5s",
                status="inconclusive" if verdict == "inconclusive" else "fail",
                message="the upstream saw attempts all through the fault: no breaker")
            matrix.put(store.CellRecord(
                scenario=scenario, file=f"scenarios/{scenario}.yaml", gateway=gateway,
                verdict=verdict, exit_code=None if verdict == "error" else 1,
                error="timed out after 600s (--cell-timeout); stopped" if verdict == "error"
                else None, first_failure=failure if verdict in ("fail", "inconclusive") else None,
                score=None if verdict == "error" else 40, report=f"{scenario}/r/report.html",
                gateway_version=f"{gateway} version 1.2.3-long-build-suffix-for-width",
                duration_s=30, inputs="0" * 64, finished_at="2026-12-02T00:30:00+00:00"))
    store.refresh_columns(matrix)
    return matrix


def test_index_html_in_chromium_scrolls_in_its_box_and_says_each_verdict(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "index.html"
    page_file.write_text(html.render(_wide_matrix()), encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            words = page.locator("td.cell .word").all_inner_texts()
            assert sorted(set(words)) == ["ERROR", "FAIL", "INCONCLUSIVE", "PASS"]
            assert len(words) == 24 and page.locator("td.cell.missing").count() == 8
            colours = {v: page.locator(f"td.cell.{v} .word").first.evaluate(
                "e => getComputedStyle(e).backgroundColor") for v in store.FINISHED}
            assert len(set(colours.values())) == 3, colours
            assert page.locator("td.cell.fail .why").first.inner_text().startswith(
                "fault breaker.opens_within: never (bound <= 5s): the upstream saw")
        finally:
            browser.close()
