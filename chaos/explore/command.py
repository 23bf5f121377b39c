"""`chaos explore SCENARIO`: exit 0 nothing found, 1 found (path printed), 2 bad input."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from chaos.errors import ScenarioError
from chaos.scenario.units import parse_duration


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ScenarioError(str(exc), option) from None


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    exp = sub.add_parser("explore", help="search fault schedules (Hypothesis) for one that "
                         "breaks the scenario's assertions; shrink it; write it as a scenario")
    exp.add_argument("scenario", help="scenario file or name from scenarios/")
    exp.add_argument("--max-examples", type=int, default=10, metavar="N",
                     help="schedules Hypothesis generates (shrinking runs come on top)")
    exp.add_argument("--time-budget", default="10m", metavar="DURATION",
                     help="no new run starts after this (default 10m)")
    exp.add_argument("--seed", type=int, default=None, help="fixed seed: the same search again")
    exp.add_argument("--phase-duration", default="6s", metavar="DURATION",
                     help="length of baseline, recovery and each fault window (default 6s)")
    exp.add_argument("--faults", default=None, metavar="KIND,...",
                     help="only these fault kinds (toxic types and kill,stop,pause,restart); "
                     "default all")
    exp.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override one value of the scenario before exploring")
    exp.add_argument("--gateway", metavar="NAME:PROFILE",
                     help="explore this gateway profile (`chaos gateways` lists them)")
    exp.add_argument("--report-dir", default="reports")
    exp.add_argument("--found-dir", default="scenarios/found")
    return exp


def cmd_explore(args: argparse.Namespace, path: Path) -> int:
    from chaos.explore.runner import explore
    from chaos.explore.strategies import fault_strategy, parse_kinds
    from chaos.scenario.loader import load_scenario

    scenario = load_scenario(path, args.set, gateway=args.gateway)
    if args.max_examples < 1:
        raise ScenarioError("--max-examples must be at least 1", "--max-examples")
    phase = _duration(args.phase_duration, "--phase-duration")
    if phase < 1:
        raise ScenarioError("--phase-duration must be at least 1s", "--phase-duration")
    budget = _duration(args.time_budget, "--time-budget")
    try:
        kinds = parse_kinds(args.faults)
        fault_strategy(scenario, kinds)  # something must be drawable
    except ValueError as exc:
        raise ScenarioError(str(exc), "--faults") from None
    command = "chaos explore " + shlex.quote(str(path)) + "".join(
        f" --set {shlex.quote(s)}" for s in args.set)
    command += f" --max-examples {args.max_examples} --phase-duration {args.phase_duration}"
    if args.seed is not None:
        command += f" --seed {args.seed}"
    if args.faults:
        command += f" --faults {args.faults}"
    outcome = explore(scenario, phase_duration=phase, max_examples=args.max_examples,
                      time_budget=budget, seed=args.seed, kinds=kinds,
                      report_root=Path(args.report_dir), found_dir=Path(args.found_dir),
                      command=command)
    print(f"[explore] {len(outcome.tried)} schedules run in {outcome.elapsed_s:g}s"
          + (" (time budget spent)" if outcome.budget_spent else ""))
    print(f"[explore] summary: {outcome.report_dir / 'index.html'}")
    if outcome.found and outcome.found_path:
        print(f"[explore] FOUND a failing schedule: {outcome.found.schedule.describe()}")
        for failure in outcome.found.failures:
            print(f"[explore]   {failure}")
        print(f"[explore] written to {outcome.found_path}; replay: chaos run {outcome.found_path}")
        print(str(outcome.found_path))
        return 1
    errors = sum(t.verdict == "error" for t in outcome.tried)
    if outcome.tried and errors == len(outcome.tried):
        print("[explore] every run ended in an error; see the run reports")
        return 3
    print("[explore] nothing found: every schedule tried kept the assertions")
    return 0
