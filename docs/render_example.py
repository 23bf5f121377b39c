"""Regenerate docs/example-report.html and docs/report.png from a stored run.

    .venv/bin/python docs/render_example.py

The page is `chaos report` of tests/fixtures/runs/witness-fail (a real failing run of
backend-crash, resilience off, with the proxy tap as its upstream witness: the timeline is
two-sided; logs, events and drill-down trimmed); the screenshot is its top at 1280 px in Debian's
Chromium (`make browser`), driven by Playwright.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE, SHOT = ROOT / "docs" / "example-report.html", ROOT / "docs" / "report.png"


def main() -> None:
    subprocess.run([sys.executable, "-m", "chaos.cli", "report", "tests/fixtures/runs/witness-fail",
                    "--output", str(PAGE)], cwd=ROOT, check=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHAOS_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(PAGE.as_uri(), wait_until="load")
        page.screenshot(path=str(SHOT))
        browser.close()
    print(SHOT)


if __name__ == "__main__":
    main()
