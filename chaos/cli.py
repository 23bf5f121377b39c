"""The `chaos` command: run, validate, list, gateways, doctor, schema, setup, report, explore, mutate.

Exit codes: 0 all assertions hold, 1 some fail, 2 bad input or usage,
3 environment problem, 4 inconclusive, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chaos.errors import ChaosError, ScenarioError

EXIT_USAGE = 2


def _scenario_path(arg: str) -> Path:
    """Accept a path or a bare scenario name from scenarios/."""
    path = Path(arg)
    if path.exists():
        return path
    from chaos.runtime.paths import project_root

    library = project_root() / "scenarios"
    for candidate in (Path("scenarios") / f"{arg}.yaml", library / f"{arg}.yaml"):
        if candidate.exists():
            return candidate
    if path.suffix in (".yaml", ".yml") or "/" in arg:
        raise ScenarioError("no such scenario file; `chaos list` shows the scenario library", arg)
    import difflib

    names = sorted({f.stem for f in [*Path("scenarios").glob("*.yaml"), *library.glob("*.yaml")]})
    close = difflib.get_close_matches(arg, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ScenarioError(f"no scenario named {arg!r} (no such file, and no scenarios/{arg}.yaml"
                        f"{hint}); `chaos list` shows them", arg)


def cmd_run(args: argparse.Namespace) -> int:
    from chaos.engine import run_scenario
    from chaos.rerun import run_command
    from chaos.scenario.loader import check_scenario, scale_phases

    path = _scenario_path(args.scenario)
    scenario, warnings = check_scenario(path, args.set, args.build_root, args.gateway)
    for warning in warnings:
        print(warning, file=sys.stderr)
    if args.duration_scale != 1.0:
        scenario = scale_phases(scenario, args.duration_scale)
    if args.capture and scenario.capture_spec() is None:
        scenario = scenario.model_copy(update={"capture": True})
    command = run_command(path, args.set, build_roots=args.build_root,
                          duration_scale=args.duration_scale, capture=args.capture,
                          baseline=args.baseline, tolerance=args.tolerance,
                          gateway=args.gateway)
    baseline = None
    if args.baseline:
        from chaos.report.writer import load_result

        if args.tolerance < 0:
            raise ScenarioError("--tolerance must be >= 0", "--tolerance")
        baseline = (args.baseline, load_result(Path(args.baseline)), args.tolerance)
    result = run_scenario(scenario, file=str(path), scenario_yaml=path.read_text(),
                          report_root=Path(args.report_dir), quiet=args.quiet, command=command,
                          baseline=baseline)
    if result.error:
        print(f"chaos: {result.error}", file=sys.stderr)
    if result.regression is not None:
        from chaos.verdict.baseline import render_text

        print(render_text(result.regression))
    return result.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    from chaos.scenario.loader import check_scenario

    status = 0
    for arg in args.files:
        try:
            scenario, warnings = check_scenario(_scenario_path(arg), args.set, args.build_root,
                                                args.gateway)
            for warning in warnings:
                print(warning, file=sys.stderr)
            print(f"ok {arg}: {scenario.name} ({len(scenario.phases)} phases, "
                  f"{len(scenario.assertions)} assertions, {scenario.total_duration():g}s)")
        except ScenarioError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
    return status


def cmd_list(args: argparse.Namespace) -> int:
    from chaos.scenario.loader import load_scenario

    folder = Path(args.folder)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        print(f"no scenarios in {folder}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(f.stem) for f in files)
    for file in files:
        try:
            scenario = load_scenario(file)
            print(f"{file.stem:<{width}}  {scenario.description}")
        except ScenarioError as exc:
            print(f"{file.stem:<{width}}  INVALID: {exc.render()}")
    return 0


def cmd_gateways(args: argparse.Namespace) -> int:
    from chaos.scenario.gateways import list_lines

    for line in list_lines():
        print(line)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from chaos.doctor import doctor

    return doctor(sweep=args.sweep)


def cmd_setup(args: argparse.Namespace) -> int:
    from chaos.runtime.setup import setup

    setup()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from chaos.report.command import report

    return report(args.results, compare=args.compare, output=args.output)


def cmd_schema(args: argparse.Namespace) -> int:
    from chaos.scenario.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from chaos.explore.command import cmd_explore as explore

    return explore(args, _scenario_path(args.scenario))


def cmd_mutate(args: argparse.Namespace) -> int:
    from chaos.mutate import cmd_mutate as mutate

    return mutate(args, _scenario_path(args.scenario))


def cmd_matrix(args: argparse.Namespace) -> int:
    from chaos.matrix.command import cmd_matrix as matrix

    return matrix(args)


def cmd_toxiproxy(args: argparse.Namespace) -> int:
    from chaos.proxy.embedded.__main__ import main as serve

    argv = ["--host", args.host, "--port", str(args.port), "--loop", args.loop]
    if args.config:
        argv += ["--config", args.config]
    if args.tap is False:
        argv.append("--no-tap")
    result = serve(argv)
    return int(result or 0)


def _add_gateway(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", metavar="NAME:PROFILE",
                        help="run the load target as this gateway profile, e.g. nginx:hardened "
                        "(wins over the file's gateway:); `chaos gateways` lists them")


def _add_build_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--build-root", action="append", default=[], metavar="DIR",
                        help="a folder that services' build: may name, besides the scenario's "
                        "own project and the harness's docker/ (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write reports")
    run.add_argument("scenario", help="scenario file or name from scenarios/")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override one value, e.g. services.gateway.env.GATEWAY_RETRIES=off")
    _add_build_root(run)
    _add_gateway(run)
    run.add_argument("--report-dir", default="reports")
    run.add_argument("--duration-scale", type=float, default=1.0, metavar="F",
                     help="multiply every phase duration by F (e.g. 5 for a longer soak); "
                     "reaction-time bounds such as recovers_within stay as written")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="no progress: only failed assertions and the verdict (for CI logs)")
    run.add_argument("--capture", action="store_true",
                     help="record evidence: tcpdump and ss in sidecars next to each service "
                     "(pcaps, socket states, who sent the resets); same as `capture: true`")
    run.add_argument("--baseline", metavar="RESULT_JSON",
                     help="a previous run's result.json (or folder): exit 1 when p99, success "
                     "rate, recovery or breaker timing got worse beyond the tolerance")
    run.add_argument("--tolerance", type=float, default=0.5, metavar="FRACTION",
                     help="relative slack for latencies and times with --baseline (default "
                     "0.5 = 50%%, and at least 50ms / 1s); rates use their confidence intervals")
    run.set_defaults(func=cmd_run)
    val = sub.add_parser("validate", help="check scenario files without starting anything")
    val.add_argument("files", nargs="+")
    val.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    _add_build_root(val)
    _add_gateway(val)
    val.set_defaults(func=cmd_validate)
    lst = sub.add_parser("list", help="list the scenario library")
    lst.add_argument("folder", nargs="?", default="scenarios")
    lst.set_defaults(func=cmd_list)
    gws = sub.add_parser("gateways", help="list the gateway profiles (NAME:PROFILE for --gateway)")
    gws.set_defaults(func=cmd_gateways)
    doc = sub.add_parser("doctor", help="find (and with --sweep remove) leftovers of dead runs")
    doc.add_argument("--sweep", action="store_true")
    doc.set_defaults(func=cmd_doctor)
    schema = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    schema.set_defaults(func=cmd_schema)
    setup = sub.add_parser("setup", help="start a Docker engine and build the images")
    setup.set_defaults(func=cmd_setup)
    rep = sub.add_parser("report", help="re-render report.html from a result.json, or compare two")
    rep.add_argument("results", nargs="+", metavar="RESULT_JSON",
                     help="a result.json or run folder; with --compare: OLD NEW")
    rep.add_argument("--compare", action="store_true", help="side-by-side diff of two runs")
    rep.add_argument("-o", "--output", help="where to write the page (default: next to the JSON; "
                     "report.html, or compare.html beside NEW)")
    rep.set_defaults(func=cmd_report)
    from chaos.explore.command import add_parser as add_explore
    from chaos.matrix.command import add_parser as add_matrix
    from chaos.mutate import add_parser as add_mutate

    add_explore(sub).set_defaults(func=cmd_explore)
    add_mutate(sub).set_defaults(func=cmd_mutate)
    add_matrix(sub).set_defaults(func=cmd_matrix)
    toxi = sub.add_parser("toxiproxy", help="the project's Toxiproxy-API server")
    toxi_sub = toxi.add_subparsers(dest="toxiproxy_command", required=True)
    serve = toxi_sub.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8474)
    serve.add_argument("--config")
    serve.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                       help="event loop: auto (uvloop when importable), uvloop, or asyncio")
    serve.add_argument("--no-tap", dest="tap", action="store_false", default=None,
                       help="no HTTP tap (no /proxies/{name}/attempts records); "
                       "same as env CHAOS_PROXY_TAP=0")
    serve.set_defaults(func=cmd_toxiproxy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ScenarioError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except ChaosError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
