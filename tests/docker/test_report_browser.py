"""report.html of real runs, opened in headless Chromium (Debian's chromium, via Playwright).

A passing run and a failing one (resilience off) are made with the `chaos` command, with a
scenario description that tries to inject markup. Each page must render with no console
errors, make no network request at all (every request is routed and recorded), show the
charts with one shaded window per fault, and show the injected markup as text.

Needs: `pip install playwright` (the Python package only; no browser download) and
`/usr/bin/chromium` (apt-get install chromium). Missing either is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHAOS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
OFF = "services.gateway.env.GATEWAY_RESILIENCE=off"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Playwright Python package is missing: `.venv/bin/pip install playwright` "
                    "(no browser download is needed; Debian's chromium is used)", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` "
                    "(or set CHAOS_CHROMIUM to a Chromium binary)", pytrace=False)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def _run(report_dir: Path, *sets: str) -> Path:
    args = [sys.executable, "-m", "chaos.cli", "run", "backend-crash", "--quiet",
            "--report-dir", str(report_dir), "--set", f"description=Report test {XSS}"]
    for item in sets:
        args += ["--set", item]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    runs = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    return runs[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report-browser")
    return {"pass": _run(base / "pass"), "fail": _run(base / "fail", OFF)}


@pytest.mark.parametrize("kind", ["pass", "fail"])
def test_report_in_chromium(browser: Any, runs: dict[str, Path], kind: str) -> None:
    run_dir = runs[kind]
    result = json.loads((run_dir / "result.json").read_text())
    if kind == "fail":
        assert result["verdict"] == "fail"
    elif result["verdict"] != "pass":  # the scenario's verdict is not what this test is about
        warnings.warn(f"the resilient run's verdict was {result['verdict']}", stacklevel=1)
    page_url = (run_dir / "report.html").resolve().as_uri()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    page = context.new_page()
    requests: list[str] = []
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))

    def route(route: Any) -> None:
        requests.append(route.request.url)
        if route.request.url == page_url:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)
    page.goto(page_url, wait_until="load")
    shot = run_dir / f"screenshot-{kind}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    assert requests == [page_url], f"the page fetched something: {requests[1:]}"
    assert console_errors == []
    assert page.inner_text("#verdict") == result["verdict"].upper()

    assert len(result["faults"]) == 2  # the kill, and the start that restores it
    faults = sum(1 for f in result["faults"] if f.get("kind") != "restore")
    for chart in ("#timeline-rps", "#timeline-latency"):
        assert page.locator(chart).is_visible()
        assert page.locator(f"{chart} .fault-window").count() == faults == 1
        assert page.locator(f"{chart} .restore-mark").count() == 1
        assert page.locator(f"{chart} .fault-window .fault-shade[fill^='url(#']").count() == 1
        box = page.locator(chart).bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 150
    assert page.locator("#timeline-rps rect").count() > 30  # the bars are drawn
    assert page.locator("#timeline-breaker .breaker-state").count() >= 1
    witness = result.get("witness") or {}
    if witness:  # issue 18: the upstream's side, below the client bars on the same axis
        lower = ".witness-none" if witness["kind"] == "none" else "rect.attempts"
        assert page.locator(f"#timeline-rps {lower}").count() >= 1
        assert page.inner_text("#witness-kind") == witness["kind"]
    labels = page.locator("#timeline-rps .fault-window title").all_text_contents()
    assert any("kill container backend" in text for text in labels)

    # The injected markup is text: visible as typed, never executed, no element created.
    assert page.evaluate("window.__xss") is None
    assert XSS in page.inner_text("header .desc")
    assert page.locator("header .desc img, header .desc script").count() == 0

    rows = page.locator("#assertions tbody tr")
    assert rows.count() == len(result["assertions"])
    failed = sum(1 for a in result["assertions"] if a["status"] == "fail")
    assert page.locator("#assertions tr.failed").count() == failed
    assert (failed > 0) == (result["verdict"] == "fail")
    context.close()


def test_report_works_with_javascript_off(browser: Any, runs: dict[str, Path]) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto((runs["fail"] / "report.html").resolve().as_uri())
    assert page.locator("#timeline-rps .fault-window").count() == 1  # the start is a marker
    page.locator("details.fault-logs summary").first.click()  # collapsible without scripts
    assert page.locator("details.fault-logs pre").first.is_visible()
    context.close()
