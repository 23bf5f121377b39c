"""`chaos report`: re-render report.html from a result.json, or compare two runs."""

from __future__ import annotations

import sys
from pathlib import Path

from chaos.errors import UsageError
from chaos.report.html import render_compare, render_html
from chaos.report.mask import Masker
from chaos.report.writer import ReportInputError, load_result


def _json_path(arg: str) -> Path:
    path = Path(arg)
    return path / "result.json" if path.is_dir() else path


def report(paths: list[str], compare: bool = False, output: str | None = None) -> int:
    """Write the page and print its path; 0 on success (ReportInputError for a bad file,
    UsageError for the wrong number of them)."""
    masker = Masker()  # by name only: values of secrets are not in a result.json
    if compare:
        if len(paths) != 2:
            raise UsageError("chaos report --compare needs two result.json files: OLD NEW")
        old, new = (masker.apply(load_result(_json_path(p))) for p in paths)
        target = Path(output) if output else _json_path(paths[1]).parent / "compare.html"
        html = render_compare(old, new)
    else:
        if len(paths) != 1:
            raise UsageError("chaos report takes one result.json (or --compare OLD NEW)")
        result = masker.apply(load_result(_json_path(paths[0])))
        target = Path(output) if output else _json_path(paths[0]).parent / "report.html"
        html = render_html(result)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ReportInputError(f"cannot write {target}: {exc}") from exc
    print(target, file=sys.stdout)
    return 0
