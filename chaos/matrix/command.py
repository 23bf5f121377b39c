"""`chaos matrix`: scenario × gateway profile, sequentially, resumable; and `--markdown`.

Exit codes: 0 every cell ran (passes and failures alike: a matrix is a report, not a
gate; a cell that timed out or errored is recorded as such); 2 bad input; 3 the harness
broke (some cell's run exited 3); 130 interrupted (matrix.json keeps every finished cell).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from chaos.errors import CellStopped, ScenarioError
from chaos.matrix import html, plan, store
from chaos.matrix.runner import not_applicable, run_cell

EXIT_HARNESS, EXIT_INTERRUPTED = 3, 130


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "matrix", help="every scenario on every gateway profile: matrix.json and index.html")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="scenario files or library names (default: all of scenarios/)")
    parser.add_argument("--gateway", action="append", default=[], metavar="NAME:PROFILE",
                        help="a column, repeatable; default (or `all`): every profile under "
                        "docker/gateways/")
    parser.add_argument("--id", help="the matrix to resume (reports/matrix-<id>); default new")
    parser.add_argument("--report-dir", default="reports")
    parser.add_argument("--cell-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="passed to every cell's chaos run")
    parser.add_argument("--markdown", nargs="?", const="latest", metavar="ID_OR_JSON",
                        help="print the README scorecard of a matrix (default: matrix-latest)")
    return parser


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _matrix_file(arg: str, report_dir: Path) -> Path:
    path = Path(arg)
    if path.is_dir():
        return path / "matrix.json"
    if path.suffix == ".json":
        return path
    return report_dir / f"matrix-{arg}" / "matrix.json"


def cmd_markdown(args: argparse.Namespace) -> int:
    from chaos.matrix.markdown import scorecard

    path = _matrix_file(args.markdown, Path(args.report_dir))
    if not path.exists():
        raise ScenarioError("no such matrix (run `chaos matrix` first)", str(path))
    sys.stdout.write(scorecard(store.load(path)))
    return 0


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise CellStopped()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open(args: argparse.Namespace, cells: list[plan.Cell]) -> tuple[store.Matrix, Path]:
    matrix_id = args.id or dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    folder = Path(args.report_dir) / f"matrix-{matrix_id}"
    rows = list(dict.fromkeys(c.scenario for c in cells))
    columns = list(dict.fromkeys(c.gateway for c in cells))
    if (folder / "matrix.json").exists():
        matrix = store.load(folder / "matrix.json")
        # a resumed matrix keeps its rows and columns in place; new ones go after them
        matrix.scenarios = list(dict.fromkeys([*matrix.scenarios, *rows]))
        matrix.gateways = list(dict.fromkeys([*matrix.gateways, *columns]))
        matrix.harness, matrix.sets = plan.harness_hash(), args.set
    else:
        matrix = store.Matrix(id=matrix_id, harness=plan.harness_hash(), started_at=_now(),
                              updated_at=_now(), sets=args.set, scenarios=rows, gateways=columns)
    _link_latest(folder)
    return matrix, folder


def _link_latest(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    latest = folder.parent / "matrix-latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(folder.name)


def _save(matrix: store.Matrix, folder: Path) -> None:
    matrix.updated_at = _now()
    store.refresh_columns(matrix)
    store.save(matrix, folder / "matrix.json")
    html.write(matrix, folder)


def _validate(cells: list[plan.Cell], sets: list[str]) -> None:
    """Every cell's scenario as its run will read it (with its profile and the --set args),
    before anything runs: bad input is exit 2 up front, not an error in every column."""
    from chaos.scenario.loader import check_scenario

    problems: list[str] = []
    for cell in cells:
        if cell.not_applicable:
            continue
        try:
            check_scenario(cell.file, sets, (), cell.gateway)
        except ScenarioError as exc:
            problems.append(f"{exc.render()} (cell {cell.scenario} on {cell.gateway}: "
                            f"{cell.file})")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise ScenarioError(f"{len(problems)} of {len(cells)} cells cannot run (above); "
                            "nothing was started", "chaos matrix")


def _say(line: str) -> None:
    print(line, flush=True)


def project_folder() -> Path:
    """Where scenarios/ and docker/gateways/ are: the working folder when it has a library."""
    if (Path.cwd() / "scenarios").is_dir():
        return Path.cwd()
    from chaos.runtime.paths import project_root

    return project_root()


def cmd_matrix(args: argparse.Namespace, root: Path | None = None) -> int:
    root = root or project_folder()
    if args.markdown is not None:
        return cmd_markdown(args)
    if args.cell_timeout <= 0:
        raise ScenarioError("--cell-timeout must be > 0 seconds", "--cell-timeout")
    files = plan.scenario_files(args.scenarios, root)
    columns = plan.gateways(args.gateway, plan.discover())
    cells = plan.plan(files, columns, args.set)
    _validate(cells, args.set)
    matrix, folder = _open(args, cells)
    _save(matrix, folder)
    harness_broke = False
    with _sigterm_stops():
        for number, cell in enumerate(cells, 1):
            head = f"[{number}/{len(cells)}] {cell.scenario} on {cell.gateway}"
            kept = matrix.cell(cell.scenario, cell.gateway)
            if kept is not None and matrix.done(cell.scenario, cell.gateway, cell.inputs):
                _say(f"{head}: {kept.verdict} (same inputs as before: kept)")
                continue
            if cell.not_applicable:
                matrix.put(not_applicable(cell))
                _save(matrix, folder)
                _say(f"{head}: n/a ({cell.not_applicable})")
                continue
            try:
                record = run_cell(cell, folder, args.set, args.cell_timeout)
            except CellStopped as stop:
                if stop.args:
                    matrix.put(stop.args[0])
                _save(matrix, folder)
                print(f"chaos matrix: interrupted during {head}; {folder / 'matrix.json'} keeps "
                      f"the finished cells (resume with --id {matrix.id})", file=sys.stderr)
                return EXIT_INTERRUPTED
            matrix.put(record)
            _save(matrix, folder)
            harness_broke |= record.exit_code == EXIT_HARNESS
            _say(f"{head}: {record.verdict}" + (f" ({record.error})" if record.error else ""))
    _say(f"matrix: {folder / 'index.html'}")
    return EXIT_HARNESS if harness_broke else 0
