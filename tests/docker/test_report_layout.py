"""report.html as an SRE reads it, laid out by headless Chromium (Debian's, via Playwright).

Rendered from stored results (tests/fixtures), so no Docker run is needed; marked docker
because it needs the browser the CI image installs (`make browser`), like
test_report_browser.py. Checks what a reader sees: nothing runs off the page at 1280 px
(wide tables scroll inside their own box), the summary cards stay on one row at 1200 px,
a bound such as `>= 0.99` never breaks, the long event table starts collapsed, fault
windows are hatched (an SVG pattern), not painted red.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.report.html import render_html
from chaos.verdict.result import Result
from tests.fixtures.report_cases import hand_built, with_evidence, with_witness

pytestmark = pytest.mark.docker

CHROMIUM = os.environ.get("CHAOS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Playwright Python package is missing: `.venv/bin/pip install playwright`",
                    pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make browser` (or set CHAOS_CHROMIUM)",
                    pytrace=False)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def _witnessed_without_probes() -> Result:
    """A gateway with no counter and no breaker probe: the cards say what the upstream saw."""
    result = with_witness()
    result.breaker, result.breaker_transitions = [], []
    return result


def _crowded() -> Result:
    """The hand-built failing run with the longest card texts a report has."""
    result = hand_built()
    result.recovered, result.recovery_s = False, None
    result.retry_amplification = 1.234
    return result


CASES = {"pass": lambda: with_evidence("pass"), "fail": lambda: with_evidence("fail"),
         "crowded": _crowded, "witness": _witnessed_without_probes,
         "no-witness": lambda: with_witness("none")}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("report-layout")
    out = {}
    for name, make in CASES.items():
        path = base / f"{name}.html"
        path.write_text(render_html(make()), encoding="utf-8")
        out[name] = path.resolve().as_uri()
    return out


def _open(browser: Any, url: str, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, java_script_enabled=True)
    page.goto(url, wait_until="load")
    return page


OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''))"""


@pytest.mark.parametrize("name", list(CASES))
def test_nothing_runs_off_the_page_at_1280(browser: Any, pages: dict[str, str], name: str) -> None:
    page = _open(browser, pages[name], 1280)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate(OVERFLOWING) == []
    # the phases table fits, or scrolls inside its own box: never past the page
    box = page.locator("#phases-box").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1280
    page.close()


@pytest.mark.parametrize("name", list(CASES))
def test_summary_cards_sit_on_one_row_at_1200(browser: Any, pages: dict[str, str],
                                              name: str) -> None:
    page = _open(browser, pages[name], 1200)
    tops = page.eval_on_selector_all("#summary .card", "cs => cs.map(c => c.getBoundingClientRect().top)")
    assert len(tops) == 6 and len(set(tops)) == 1, tops
    page.close()


def test_a_bound_is_on_one_line(browser: Any, pages: dict[str, str]) -> None:
    page = _open(browser, pages["fail"], 1280)
    for text in (">= 0.99", "< 500ms", "<= 10s"):
        bound = page.locator("#assertions code.bound", has_text=text).first
        assert bound.evaluate("e => e.getClientRects().length") == 1, text
        height = bound.evaluate("e => e.getBoundingClientRect().height")
        line = bound.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 20")
        assert height < 1.5 * line, (text, height, line)
    page.close()


def test_the_event_table_starts_collapsed_with_its_count(browser: Any, pages: dict[str, str]) -> None:
    page = _open(browser, pages["pass"], 1280)
    box = page.locator("details#evidence-events-box")
    assert box.evaluate("e => e.open") is False
    assert not page.locator("#evidence-timeline").is_visible()
    rows = page.locator("#evidence-timeline tbody tr").count()
    assert rows >= 220
    assert page.locator("#evidence-events-box > summary").inner_text().startswith(f"{rows} events")
    page.locator("#evidence-events-box > summary").click()
    assert page.locator("#evidence-timeline").is_visible()
    page.close()


def test_expected_errors_are_not_listed_as_failures(browser: Any, pages: dict[str, str]) -> None:
    page = _open(browser, pages["pass"], 1280)
    assert page.inner_text("#evidence-samples") == "Failed requests: none"
    assert page.locator("#evidence-samples ~ details.evidence-sample").count() == 0
    summary = page.inner_text("#expected-samples > summary")
    assert "1973 graceful errors" in summary and "phases fault, recovery" in summary
    assert page.locator("#expected-samples details.evidence-sample").count() > 0
    page.close()


@pytest.mark.parametrize("chart", ["#timeline-rps", "#timeline-latency"])
def test_fault_windows_are_hatched(browser: Any, pages: dict[str, str], chart: str) -> None:
    page = _open(browser, pages["fail"], 1280)
    shades = page.locator(f"{chart} .fault-window .fault-shade")
    # the fixture kills the backend (a fault window) and starts it again (a restore: a
    # marker, not a window)
    assert shades.count() == 1
    assert page.locator(f"{chart} .restore-mark").count() == 1
    for i in range(shades.count()):
        fill = shades.nth(i).get_attribute("fill") or ""
        assert fill.startswith("url(#"), fill
        pattern = page.locator(f"{chart} pattern{fill[4:-1]}")
        assert pattern.count() == 1 and pattern.locator("line").count() >= 1
    # red is a reset and nothing else: no fault window, latency line or breaker state uses it
    reds = page.evaluate("""() => [...document.querySelectorAll('svg [fill], svg [stroke]')]
        .filter(e => ['fill', 'stroke'].some(a => (e.getAttribute(a) || '').toUpperCase() === '#D55E00'))
        .length""")
    bars = page.locator("#timeline-rps rect[fill='#D55E00']").count()
    assert reds == bars and bars > 0  # the reset bars, only
    page.close()


def test_screenshots_at_1280_and_1920(browser: Any, pages: dict[str, str],
                                      tmp_path: Path) -> None:
    for width in (1280, 1920):
        page = _open(browser, pages["fail"], width)
        shot = tmp_path / f"report-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.close()


def test_two_sided_timeline_lines_up(browser: Any, pages: dict[str, str]) -> None:
    """Upstream attempts below the client bars, on one axis: a fault window's hatch and the
    inferred breaker's shading span the lower band, probes sit inside it, the drill-down
    opens without scripts; with no witness the band is one line saying why."""
    page = _open(browser, pages["witness"], 1280)
    chart = page.locator("#timeline-rps")
    box = chart.bounding_box()
    assert box is not None and box["height"] > 330  # two bands, not one
    client = page.locator("#timeline-rps > rect[fill='#D55E00']").first.bounding_box()
    attempts = page.locator("#timeline-rps rect.attempts.failed").first.bounding_box()
    shade = page.locator("#timeline-rps .fault-window .fault-shade").first.bounding_box()
    opened = page.locator("#timeline-rps .breaker-open .breaker-shade").bounding_box()
    assert client and attempts and shade and opened
    assert attempts["y"] > client["y"] + client["height"]  # below the client band
    assert abs(attempts["x"] - client["x"]) < 1  # the same second, the same x
    assert shade["y"] + shade["height"] >= attempts["y"] + attempts["height"]
    for probe in page.locator("#timeline-rps .breaker-probe path").all():
        x = (probe.bounding_box() or {"x": 0.0})["x"]
        assert opened["x"] <= x <= opened["x"] + opened["width"]
    assert page.locator("#drilldown").is_visible() is False
    page.locator("#drilldown-box > summary").click()
    assert page.locator("#drilldown tr.dd-attempt").first.is_visible()
    page.close()
    page = _open(browser, pages["no-witness"], 1280)
    assert "upstream not seen" in (page.locator("#timeline-rps .witness-none text").text_content() or "")
    assert page.locator("#timeline-rps rect.attempts").count() == 0
    page.close()
