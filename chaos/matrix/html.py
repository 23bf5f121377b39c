"""index.html: rows scenarios, columns gateway profiles, each cell a word and a colour.

Uses the run report's stylesheet (chaos/report/templates/_style.html.j2: its palette and
its Content-Security-Policy), so a matrix reads like the reports it links to.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from chaos.matrix.store import CellRecord, Matrix

_ENV = Environment(loader=ChoiceLoader([PackageLoader("chaos.matrix", "templates"),
                                        PackageLoader("chaos.report", "templates")]),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                   lstrip_blocks=True)
WORDS = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR", "n/a": "n/a"}


def short_failure(cell: CellRecord, width: int = 90) -> str:
    """The first failing assertion in one line: phase kind observed vs bound, and its words."""
    if cell.verdict in ("error", "n/a"):
        text = cell.error or cell.verdict
    elif cell.first_failure is None:
        return ""
    else:
        f = cell.first_failure
        text = f"{f.phase} {f.kind}: {f.observed} (bound {f.bound})"
        if f.message:
            text += f": {f.message}"
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def render(matrix: Matrix) -> str:
    grid = [[matrix.cell(s, g) for g in matrix.gateways] for s in matrix.scenarios]
    columns = {c.gateway: c for c in matrix.columns}
    return _ENV.get_template("index.html.j2").render(
        m=matrix, grid=grid, columns=columns, words=WORDS, short=short_failure)


def write(matrix: Matrix, folder: Path) -> Path:
    page = folder / "index.html"
    tmp = folder / ".index.html.tmp"
    tmp.write_text(render(matrix), encoding="utf-8")
    tmp.replace(page)
    return page
