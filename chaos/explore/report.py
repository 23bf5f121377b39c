"""reports/explore-<id>/index.html (and explore.json): what was tried, what was found."""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING

from chaos.scenario.model import Scenario

if TYPE_CHECKING:
    from chaos.explore.runner import Outcome

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:75em}"
          "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;"
          "text-align:left;vertical-align:top}.fail{color:#b00020;font-weight:bold}"
          ".pass{color:#1b5e20}.found{background:#fff3e0;padding:1em;border-left:4px solid #e65100}")


def write_summary(outcome: Outcome, scenario: Scenario, command: str) -> None:
    from chaos.explore.runner import outcome_json

    out = outcome.report_dir
    (out / "explore.json").write_text(outcome_json(outcome), encoding="utf-8")
    e = html.escape
    rows = []
    for i, t in enumerate(outcome.tried, 1):
        link = os.path.relpath(t.report_dir, out) + "/report.html" if t.report_dir else ""
        rows.append(f"<tr><td>{i}</td><td class='{e(t.verdict)}'>{e(t.verdict)}</td>"
                    f"<td>{t.duration_s:g}s</td><td>{e(t.schedule.describe())}</td>"
                    f"<td>{'<br>'.join(e(f) for f in t.failures)}</td>"
                    f"<td><a href='{e(link)}'>report</a></td></tr>")
    if outcome.found and outcome.found_path:
        found = (f"<div class='found'><h2>Found a failing schedule</h2>"
                 f"<p>{e(outcome.found.schedule.describe())}</p><ul>"
                 + "".join(f"<li>{e(f)}</li>" for f in outcome.found.failures)
                 + f"</ul><p>Written to <code>{e(str(outcome.found_path))}</code>; replay with "
                 f"<code>chaos run {e(str(outcome.found_path))}</code></p></div>")
    else:
        found = "<p class='pass'>No failing schedule found within the budget.</p>"
    spent = " The time budget ran out before the search ended." if outcome.budget_spent else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>explore "
            f"{e(scenario.name)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>chaos explore: {e(scenario.name)}</h1><p><code>{e(command)}</code></p>"
            f"<p>{len(outcome.tried)} schedules run in {outcome.elapsed_s:g}s.{spent}</p>"
            f"{found}<h2>Schedules tried</h2><table><tr><th>#</th><th>verdict</th>"
            f"<th>run time</th><th>schedule</th><th>failed assertions</th><th></th></tr>"
            + "".join(rows) + "</table></body></html>")
    (out / "index.html").write_text(page, encoding="utf-8")
