"""`chaos mutate SCENARIO`: mutation testing of a resilience scenario.

Each mutant is the scenario with some values overridden (the same syntax as
``--set``), typically one resilience mechanism of the gateway switched off. The
scenario *kills* a mutant when its verdict on the mutant is ``fail``. A scenario that
kills no mutant asserts nothing useful: it would pass a gateway lacking every
mechanism it claims to test.

Exit codes: 0 the unmutated scenario does not fail and at least one mutant is killed;
1 no mutant killed ("asserts nothing useful") or the unmutated scenario itself fails
(kills then prove nothing); 2 bad input (no mutants for a non-reference gateway, a bad
``--mutant``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chaos.errors import Interrupted, ScenarioError
from chaos.rerun import run_command
from chaos.scenario.model import Scenario
from chaos.verdict.result import Result

# The reference gateway's switches (docker/gateway/config.py), one mechanism each.
REFERENCE_SWITCHES = {
    "retries-off": "GATEWAY_RETRIES",
    "breaker-off": "GATEWAY_BREAKER",
    "error-mapping-off": "GATEWAY_ERROR_MAPPING",
    "timeouts-off": "GATEWAY_TIMEOUTS",
}
REFERENCE_BUILD = "docker/gateway"


@dataclass
class MutantOutcome:
    name: str
    sets: list[str]
    verdict: str
    killed: bool
    failures: list[str] = field(default_factory=list)
    report_dir: str = ""
    duration_s: float = 0.0


def default_mutants(scenario: Scenario) -> dict[str, list[str]]:
    """One mutant per switch of the reference gateway, when the load target is it."""
    target = scenario.load.target
    service = scenario.services[target]
    if (service.build or "").rstrip("/") != REFERENCE_BUILD:
        return {}
    return {name: [f"services.{target}.env.{switch}=off"]
            for name, switch in REFERENCE_SWITCHES.items()}


def parse_mutants(items: list[str]) -> dict[str, list[str]]:
    """`NAME=KEY.PATH=VALUE`, repeatable; the same NAME again adds another override."""
    mutants: dict[str, list[str]] = {}
    for item in items:
        name, sep, setting = item.partition("=")
        if not sep or not name.strip() or "=" not in setting:
            raise ScenarioError(f"--mutant expects NAME=KEY.PATH=VALUE, got {item!r}", "--mutant")
        mutants.setdefault(name.strip(), []).append(setting)
    return mutants


RunFn = Callable[[Scenario, Path, str], Result]


def _real_run(scenario: Scenario, report_root: Path, command: str) -> Result:
    from chaos.engine import run_scenario

    return run_scenario(scenario, report_root=report_root, quiet=True, command=command)


def mutate(path: Path, mutants: dict[str, list[str]], *, base_sets: list[str] | None = None,
           duration_scale: float = 1.0, report_root: Path = Path("reports"),
           run: RunFn = _real_run, log: Callable[[str], None] = print,
           ) -> tuple[MutantOutcome, list[MutantOutcome], Path]:
    """Run the unmutated scenario, then each mutant; return both and the report folder."""
    from chaos.scenario.loader import load_scenario, scale_phases

    base_sets = base_sets or []
    out = report_root / ("mutate-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-"
                         + secrets.token_hex(2))
    out.mkdir(parents=True, exist_ok=True)
    # Load every mutant first: a bad override fails before anything runs.
    variants: dict[str, list[str]] = {"(original)": []} | mutants
    scenarios = {}
    for name, sets in variants.items():
        scenario = load_scenario(path, base_sets + sets)
        if duration_scale != 1.0:
            scenario = scale_phases(scenario, duration_scale)
        scenarios[name] = scenario
    outcomes: list[MutantOutcome] = []
    for name, sets in variants.items():
        command = run_command(path, [*base_sets, *sets], duration_scale=duration_scale)
        result = run(scenarios[name], out / "runs", command)
        if result.verdict == "interrupted":
            raise Interrupted("mutate was interrupted")
        failures = [f"[{a.phase}] {a.label} {a.bound}: observed {a.observed}"
                    for a in result.assertions if a.status == "fail"]
        item = MutantOutcome(name, sets, result.verdict, result.verdict == "fail", failures,
                             result.report_dir, result.duration_s)
        outcomes.append(item)
        if name == "(original)":
            shown = "fails itself" if item.killed else "unmutated"
        else:
            shown = "killed" if item.killed else "survived"
        log(f"[mutate] {name:<20} {result.verdict:<12} {shown}")
    original, rest = outcomes[0], outcomes[1:]
    _write(out, path, original, rest)
    return original, rest, out


def table(original: MutantOutcome, mutants: list[MutantOutcome]) -> str:
    width = max([len(m.name) for m in mutants] + [len(original.name), 6])
    lines = [f"{'mutant':<{width}}  {'verdict':<12}  outcome   first failed assertion"]
    for m in [original, *mutants]:
        outcome = ("-" if m is original else "KILLED" if m.killed else "survived")
        lines.append(f"{m.name:<{width}}  {m.verdict:<12}  {outcome:<8}  "
                     f"{m.failures[0] if m.failures else ''}")
    return "\n".join(lines)


def summary(original: MutantOutcome, mutants: list[MutantOutcome]) -> tuple[int, str]:
    killed = [m for m in mutants if m.killed]
    if original.verdict == "fail":
        return 1, ("the unmutated scenario fails: fix it (or the gateway) before reading kills")
    if not killed:
        return 1, "kills no mutant: this scenario asserts nothing useful"
    return 0, f"kills {len(killed)} of {len(mutants)} mutants"


def _write(out: Path, path: Path, original: MutantOutcome, mutants: list[MutantOutcome]) -> None:
    code, message = summary(original, mutants)
    (out / "mutate.json").write_text(json.dumps({
        "scenario": str(path), "exit_code": code, "summary": message,
        "original": asdict(original), "mutants": [asdict(m) for m in mutants]}, indent=2),
        encoding="utf-8")
    e = html.escape
    rows = []
    for m in [original, *mutants]:
        outcome = "—" if m is original else ("killed" if m.killed else "survived")
        css = "killed" if m.killed and m is not original else "survived"
        link = os.path.relpath(m.report_dir, out) + "/report.html" if m.report_dir else ""
        rows.append(f"<tr><td>{e(m.name)}</td><td><code>{e(' '.join(m.sets))}</code></td>"
                    f"<td>{e(m.verdict)}</td><td class='{css}'>{e(outcome)}</td>"
                    f"<td>{'<br>'.join(e(f) for f in m.failures)}</td>"
                    f"<td><a href='{e(link)}'>report</a></td></tr>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}"
             ".killed{color:#1b5e20;font-weight:bold}.survived{color:#b00020}"
             ".warn{color:#b00020;font-weight:bold}")
    verdict_css = "" if code == 0 else " class='warn'"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>mutate {e(str(path))}"
            f"</title><style>{style}</style></head><body><h1>chaos mutate: {e(str(path))}</h1>"
            f"<p{verdict_css}>{e(message)}</p><table><tr><th>mutant</th><th>overrides</th>"
            "<th>verdict</th><th>outcome</th><th>failed assertions</th><th></th></tr>"
            + "".join(rows) + "</table></body></html>")
    (out / "index.html").write_text(page, encoding="utf-8")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    mut = sub.add_parser("mutate", help="run the scenario against gateway mutants (mechanisms "
                         "switched off) and report which ones it catches")
    mut.add_argument("scenario", help="scenario file or name from scenarios/")
    mut.add_argument("--mutant", action="append", default=[], metavar="NAME=KEY.PATH=VALUE",
                     help="a mutant (repeat NAME for several overrides); default: the reference "
                     "gateway's switches " + ", ".join(REFERENCE_SWITCHES))
    mut.add_argument("--no-default-mutants", action="store_true",
                     help="only the --mutant ones")
    mut.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override applied to the original and every mutant")
    mut.add_argument("--duration-scale", type=float, default=1.0, metavar="F")
    mut.add_argument("--report-dir", default="reports")
    return mut


def cmd_mutate(args: argparse.Namespace, path: Path) -> int:
    from chaos.scenario.loader import load_scenario

    scenario = load_scenario(path, args.set)
    mutants = {} if args.no_default_mutants else default_mutants(scenario)
    mutants |= parse_mutants(args.mutant)
    if not mutants:
        raise ScenarioError("no mutants: the load target is not the reference gateway "
                            f"({REFERENCE_BUILD}); give some with --mutant NAME=KEY.PATH=VALUE",
                            "--mutant")
    original, results, out = mutate(path, mutants, base_sets=args.set,
                                    duration_scale=args.duration_scale,
                                    report_root=Path(args.report_dir))
    print(table(original, results))
    code, message = summary(original, results)
    print(f"[mutate] {path}: {message}")
    print(f"[mutate] report: {out / 'index.html'}")
    return code
