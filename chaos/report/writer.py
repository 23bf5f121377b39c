"""Write every report of a run into its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chaos.report.html import render_html
from chaos.report.junit import render_junit
from chaos.verdict.result import Result


def write_reports(result: Result, run_dir: Path, records: Path | None = None,
                  t0: float | None = None) -> dict[str, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": run_dir / "result.json",
        "junit": run_dir / "junit.xml",
        "html": run_dir / "report.html",
    }
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    paths["junit"].write_text(render_junit(result))
    paths["html"].write_text(render_html(result), encoding="utf-8")
    latest = run_dir.parent / f"{result.scenario}-latest"
    try:
        if latest.is_symlink() or latest.exists():
            if latest.is_dir() and not latest.is_symlink():
                shutil.rmtree(latest)
            else:
                latest.unlink()
        latest.symlink_to(run_dir.name)
    except OSError:
        pass
    return paths
