"""chaos run --baseline: a rerun is no regression; a clearly better baseline is.

The three runs are backend-reset at half its phase lengths (--duration-scale 0.5): what is
tested is the comparison, which scales with the runs, not the scenario's verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def run(report_dir: Path, *args: str) -> tuple[int, str, dict]:
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "run", "backend-reset", "--quiet",
                           "--duration-scale", "0.5", "--report-dir", str(report_dir), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    run_dir = next(p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return proc.returncode, proc.stdout + proc.stderr, json.loads(
        (run_dir / "result.json").read_text())


def test_baseline_gates_on_regressions(tmp_path: Path) -> None:
    code, output, first = run(tmp_path / "a")
    assert code in (0, 4), output
    old = tmp_path / "old.json"
    old.write_text(json.dumps(first))
    code, output, second = run(tmp_path / "b", "--baseline", str(old))
    assert second["regression"]["regressed"] is False, output
    assert code in (0, 4), output
    assert "no regression" in output
    assert "Regression against a baseline" in (
        Path(second["report_dir"]) / "report.html").read_text()

    # A hand-made baseline that was far better: every request succeeded, at 1 ms.
    for stats in first["phase_stats"]:
        stats["counts"] = {"ok": 100_000}
        stats["total"] = 100_000
        stats["success_rate"] = 1.0
        stats["p99_ms"] = 1.0
    better = tmp_path / "better.json"
    better.write_text(json.dumps(first))
    code, output, third = run(tmp_path / "c", "--baseline", str(better))
    assert code == 1, output
    assert third["regression"]["regressed"] is True
    regressed = {(c["metric"], c["phase"]) for c in third["regression"]["checks"] if c["regressed"]}
    assert ("success_rate", "fault") in regressed, regressed
    assert "REGRESSION" in output
