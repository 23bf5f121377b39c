"""Runs one cell: `chaos run SCENARIO --gateway NAME:PROFILE --quiet --report-dir DIR` as a
subprocess, bounded by a timeout, and reads back what its result.json says.

The run owns its containers: on a timeout, Ctrl-C or SIGTERM the cell's process gets
SIGTERM (its engine turns that into a clean teardown) and some time to finish it before
it is killed. A cell never raises for what its run did: a timeout or a crash is an error
cell with the reason, and the matrix goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chaos.errors import CellStopped
from chaos.matrix.plan import Cell
from chaos.matrix.store import CellRecord, FirstFailure, Verdict

TEARDOWN_GRACE_S = 60.0  # how long a stopped run may take to remove what it made
RUN_COMMAND_ENV = "CHAOS_MATRIX_RUN"  # tests: the command that stands in for `chaos run`
VERDICTS: dict[str, Verdict] = {"pass": "pass", "fail": "fail", "inconclusive": "inconclusive"}


def run_command() -> list[str]:
    override = os.environ.get(RUN_COMMAND_ENV)
    return shlex.split(override) if override else [sys.executable, "-m", "chaos.cli", "run"]


def cell_argv(cell: Cell, report_dir: Path, sets: list[str]) -> list[str]:
    argv = [*run_command(), str(cell.file), "--gateway", cell.gateway, "--quiet",
            "--report-dir", str(report_dir)]
    for item in sets:
        argv += ["--set", item]
    return argv


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, the grace for its teardown, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(TEARDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _newest_result(report_dir: Path, since: float) -> Path | None:
    found = [p for p in report_dir.glob("*/result.json") if not p.parent.is_symlink()
             and p.stat().st_mtime >= since - 1]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def first_failure(result: dict[str, Any]) -> FirstFailure | None:
    """The first failed assertion, or the first inconclusive one when none failed."""
    rows = [a for a in result.get("assertions") or [] if isinstance(a, dict)]
    for wanted in ("fail", "inconclusive"):
        for row in rows:
            status = row.get("status") or ("pass" if row.get("passed") else "fail")
            if status == wanted:
                return FirstFailure(phase=str(row.get("phase", "")), kind=str(row.get("kind", "")),
                                    observed=str(row.get("observed", "")),
                                    bound=str(row.get("bound", "")), status=wanted,
                                    message=str(row.get("message") or ""))
    return None


def _record(cell: Cell, matrix_dir: Path, started: float, code: int | None,
            error: str | None, result_file: Path | None) -> CellRecord:
    result: dict[str, Any] = {}
    if result_file is not None:
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            error = error or f"its result.json is unreadable: {exc}"
    verdict = VERDICTS.get(str(result.get("verdict")), "error")
    if verdict == "error" and error is None:
        error = str(result.get("error") or f"chaos run exited {code} without a verdict")
    report = result_file.parent / "report.html" if result_file else None
    environment = result.get("environment") or {}
    score = result.get("score")
    return CellRecord(
        scenario=cell.scenario, file=str(cell.file), gateway=cell.gateway, verdict=verdict,
        exit_code=code, error=error if verdict == "error" else None,
        first_failure=first_failure(result) if verdict in ("fail", "inconclusive") else None,
        score=score if isinstance(score, int) and verdict != "error" else None,
        report=(os.path.relpath(report, matrix_dir) if report and report.exists() else None),
        gateway_version=environment.get("gateway") if isinstance(environment, dict) else None,
        images={str(k): str(v) for k, v in (result.get("images") or {}).items()},
        duration_s=round(time.monotonic() - started, 2), inputs=cell.inputs,
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def not_applicable(cell: Cell) -> CellRecord:
    """The record of a cell that is not run: its gateway cannot carry the scenario's load."""
    return CellRecord(
        scenario=cell.scenario, file=str(cell.file), gateway=cell.gateway, verdict="n/a",
        exit_code=None, error=cell.not_applicable, score=None, report=None,
        gateway_version=None, duration_s=0.0, inputs=cell.inputs,
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def run_cell(cell: Cell, matrix_dir: Path, sets: list[str], timeout_s: float) -> CellRecord:
    """Run one cell to its record. Raises CellStopped (after stopping the run) on Ctrl-C/SIGTERM,
    with the interrupted cell's record as its argument."""
    report_dir = matrix_dir / cell.slug
    report_dir.mkdir(parents=True, exist_ok=True)
    started, wall = time.monotonic(), time.time()
    with open(report_dir / "matrix-run.log", "wb") as log:
        try:
            # Its own session: a Ctrl-C in the terminal reaches the matrix only, which
            # then stops the run with SIGTERM and waits for its teardown.
            process = subprocess.Popen(cell_argv(cell, report_dir, sets), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return _record(cell, matrix_dir, started, None, f"chaos run did not start: {exc}", None)
        try:
            code: int | None = process.wait(timeout_s)
            error = None
        except subprocess.TimeoutExpired:
            _stop(process)
            code, error = None, f"timed out after {timeout_s:g}s (--cell-timeout); stopped"
        except (KeyboardInterrupt, CellStopped):
            _stop(process)
            raise CellStopped(_record(cell, matrix_dir, started, None, "interrupted: the matrix "
                                  "was stopped while this cell ran",
                                  _newest_result(report_dir, wall))) from None
    if code not in (0, 1, 4, None) and error is None:
        error = f"chaos run exited {code}: {_tail(report_dir / 'matrix-run.log')}"
    return _record(cell, matrix_dir, started, code, error, _newest_result(report_dir, wall))


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "no output"
