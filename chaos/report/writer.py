"""Write every report of a run into its folder, and read a result.json back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chaos.report.derive import attach_fault_logs, enrich
from chaos.report.html import render_html
from chaos.report.junit import render_junit
from chaos.report.mask import Masker, mask_run_files
from chaos.report.validate import ReportInputError, read_result_data
from chaos.verdict.result import Result

__all__ = ["ReportInputError", "load_result", "result_json", "write_reports"]


def result_json(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str, ensure_ascii=False) + "\n"


def write_reports(result: Result, run_dir: Path, records: Path | None = None,
                  t0: float | None = None, masker: Masker | None = None) -> dict[str, Path]:
    """result.json, junit.xml and report.html; secrets masked in them and in the run's files.

    `t0` (epoch seconds of the first phase) lets each fault carry the log lines around it,
    cut from the whole logs the run saved under logs/.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    masker = masker or Masker()
    if t0 is not None:
        attach_fault_logs(result.faults, run_dir / "logs", t0)
    enrich(result)
    masked = masker.apply(result)
    mask_run_files(run_dir, masker)
    paths = {
        "json": run_dir / "result.json",
        "junit": run_dir / "junit.xml",
        "html": run_dir / "report.html",
    }
    paths["json"].write_text(result_json(masked), encoding="utf-8")
    paths["junit"].write_text(render_junit(masked), encoding="utf-8")
    paths["html"].write_text(render_html(masked), encoding="utf-8")
    _link_latest(run_dir, result.scenario)
    return paths


def _link_latest(run_dir: Path, scenario: str) -> None:
    latest = run_dir.parent / f"{scenario}-latest"
    try:
        if latest.is_symlink() or latest.exists():
            if latest.is_dir() and not latest.is_symlink():
                shutil.rmtree(latest)
            else:
                latest.unlink()
        latest.symlink_to(run_dir.name)
    except OSError:
        pass


def load_result(path: Path) -> Result:
    """A Result from a result.json (or a run folder holding one), validated first
    (chaos.report.validate): a bad file is a ReportInputError naming it, never a traceback."""
    if path.is_dir():
        path = path / "result.json"
    data = read_result_data(path)
    try:
        return Result.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ReportInputError(f"{path}: malformed result.json: {exc}") from exc
