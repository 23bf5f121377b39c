"""Drive Hypothesis over fault schedules; every example is a real, short, quiet run.

A failing verdict raises inside the Hypothesis test, so Hypothesis shrinks toward a
smaller schedule that still fails. Runs are cached by schedule, so the replay that
Hypothesis does at the end costs nothing and cannot turn out "flaky". The time budget
is checked before each run: once spent, no new run starts (examples then pass
untried) and the smallest failing schedule seen so far is the answer.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase

from chaos.errors import Interrupted
from chaos.explore.schedule import scenario_yaml, schedule_hash, to_scenario
from chaos.explore.strategies import ALL_KINDS, Schedule, Window, schedule_strategy, sort_key
from chaos.scenario.model import Scenario
from chaos.verdict.result import Result


@dataclass
class Tried:
    schedule: Schedule
    verdict: str
    duration_s: float
    report_dir: str
    failures: list[str] = field(default_factory=list)  # "[phase] kind bound: observed ..."

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


@dataclass
class Outcome:
    tried: list[Tried]
    found: Tried | None
    found_path: Path | None
    report_dir: Path
    budget_spent: bool
    elapsed_s: float


class _Failed(Exception):
    def __init__(self, tried: Tried) -> None:
        super().__init__(tried.schedule.describe())
        self.tried = tried


RunFn = Callable[[Scenario, Path], Result]


def _real_run(scenario: Scenario, report_root: Path) -> Result:
    from chaos.engine import run_scenario

    return run_scenario(scenario, scenario_yaml=scenario_yaml(scenario),
                        report_root=report_root, quiet=True,
                        command=f"chaos explore (schedule of {scenario.name})")


def failures_of(result: Result) -> list[str]:
    return [f"[{a.phase}] {a.label} {a.bound}: observed {a.observed}"
            for a in result.assertions if a.status == "fail"]


class _Search:
    """The runs of one exploration: cached by schedule, bounded by the time budget."""

    def __init__(self, scenario: Scenario, phase_duration: float, deadline: float,
                 runs_dir: Path, run: RunFn, log: Callable[[str], None]) -> None:
        self.scenario = scenario
        self.phase_duration = phase_duration
        self.deadline = deadline
        self.runs_dir = runs_dir
        self.run = run
        self.log = log
        self.cache: dict[str, Tried] = {}
        self.tried: list[Tried] = []
        self.spent = False

    def attempt(self, schedule: Schedule) -> Tried | None:
        """Run a schedule once (cached); None when the budget does not allow a new run."""
        key = repr(schedule)
        if key in self.cache:
            return self.cache[key]
        # A run takes about as long as the last one did: do not start one that would
        # end far past the budget.
        expected = self.tried[-1].duration_s if self.tried else 0.0
        if time.monotonic() + expected / 2 > self.deadline:
            self.spent = True
            return None
        candidate = to_scenario(self.scenario, schedule, self.phase_duration)
        t = time.monotonic()
        result = self.run(candidate, self.runs_dir)
        item = Tried(schedule, result.verdict, round(time.monotonic() - t, 1),
                     result.report_dir, failures_of(result))
        self.cache[key] = item
        self.tried.append(item)
        note = f" ({'; '.join(item.failures[:2])})" if item.failures else ""
        self.log(f"[explore] #{len(self.tried)} {item.verdict.upper():<12} {item.duration_s:5.1f}s  "
                 f"{schedule.describe()}{note}")
        if result.verdict == "interrupted":
            # Not an Exception: Hypothesis would take it for a failure and shrink it.
            raise KeyboardInterrupt
        return item

    def check(self, schedule: Schedule) -> None:
        """The Hypothesis test body: raises _Failed when the schedule's run fails."""
        item = self.attempt(schedule)
        if item is None or not item.failed:
            return
        if not any(t.failed for t in self.tried if t is not item):
            # First failure: real runs are too dear for Hypothesis' generic shrink
            # passes alone, so first try each of its faults on its own (fewest faults).
            for single in single_fault_schedules(schedule, self.phase_duration):
                done = self.attempt(single)
                if done is None or done.failed:
                    break
        raise _Failed(item)

    def smallest_failure(self) -> Tried | None:
        failing = [t for t in self.tried if t.failed]
        return min(failing, key=lambda t: sort_key(t.schedule)) if failing else None


def _hypothesis_test(search: _Search, kinds: tuple[str, ...], max_examples: int,
                     seed: int | None, db_dir: Path) -> Callable[[], None]:
    scenario, phase_duration = search.scenario, search.phase_duration
    db = DirectoryBasedExampleDatabase(str(db_dir / _db_key(scenario, kinds, phase_duration)))
    test: Callable[[], None] = settings(
        max_examples=max_examples, deadline=None, database=db,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
        print_blob=False, verbosity=Verbosity.quiet)(
        given(schedule_strategy(scenario, phase_duration, kinds))(search.check))
    if seed is not None:  # Hypothesis then neither reads nor writes the database
        test = hypothesis_seed(seed)(test)
    return test


def explore(scenario: Scenario, *, phase_duration: float = 6.0, max_examples: int = 10,
            time_budget: float = 600.0, seed: int | None = None,
            kinds: tuple[str, ...] = ALL_KINDS, report_root: Path = Path("reports"),
            found_dir: Path = Path("scenarios/found"), db_dir: Path = Path(".chaos/hypothesis"),
            command: str = "", run: RunFn = _real_run,
            log: Callable[[str], None] = print) -> Outcome:
    """Search schedules for `scenario`; write the smallest failing one as a scenario file."""
    explore_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    out_dir = report_root / f"explore-{explore_id}"
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    search = _Search(scenario, phase_duration, started + time_budget, runs_dir, run, log)
    try:
        _hypothesis_test(search, kinds, max_examples, seed, db_dir)()
    except _Failed:
        pass
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as exc:  # noqa: BLE001 - Hypothesis' own errors: keep what was run
        if not any(t.failed for t in search.tried):
            raise
        log(f"[explore] note: hypothesis ended with {type(exc).__name__}; "
            "keeping the smallest failing schedule that was run")
    found = search.smallest_failure()
    found_path = _write_found(scenario, found, phase_duration, found_dir, command) if found else None
    outcome = Outcome(search.tried, found, found_path, out_dir, search.spent,
                      round(time.monotonic() - started, 1))
    from chaos.explore.report import write_summary

    write_summary(outcome, scenario, command)
    return outcome


def single_fault_schedules(schedule: Schedule, phase_duration: float) -> list[Schedule]:
    """Each fault of a schedule alone in one full-length window, mildest first."""
    singles = {Schedule((Window(phase_duration, (f,)),)) for f in schedule.faults}
    if len(schedule.faults) == 1 and len(schedule.windows) == 1:
        singles.discard(schedule)
    return sorted(singles, key=sort_key)


def _db_key(scenario: Scenario, kinds: tuple[str, ...], phase_duration: float) -> str:
    """One database per scenario content and search space: a failure stored for one
    scenario is replayed first only for the same one."""
    import hashlib

    text = scenario.model_dump_json() + ",".join(kinds) + f"{phase_duration:g}"
    return f"{scenario.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def found_name(original: str, schedule: Schedule) -> str:
    return f"{original[:30]}-{schedule_hash(schedule)}"


def _write_found(scenario: Scenario, found: Tried, phase_duration: float, found_dir: Path,
                 command: str) -> Path:
    name = found_name(scenario.name, found.schedule)
    replay = to_scenario(scenario, found.schedule, phase_duration, name=name)
    found_dir.mkdir(parents=True, exist_ok=True)
    path = found_dir / f"{name}.yaml"
    lines = [
        f"Found by chaos explore from scenario {scenario.name!r}"
        + (f": {command}" if command else ""),
        f"Schedule: {found.schedule.describe()}",
        "It broke these assertions (observed vs bound):",
        *[f"  {f}" for f in found.failures],
        f"Run that found it: {found.report_dir}",
        f"Replay: chaos run {path}",
    ]
    path.write_text(scenario_yaml(replay, "\n".join(lines)), encoding="utf-8")
    return path


def outcome_json(outcome: Outcome) -> str:
    return json.dumps({
        "tried": [{"schedule": t.schedule.describe(), "verdict": t.verdict,
                   "duration_s": t.duration_s, "report_dir": t.report_dir,
                   "failures": t.failures} for t in outcome.tried],
        "found": outcome.found.schedule.describe() if outcome.found else None,
        "found_path": str(outcome.found_path) if outcome.found_path else None,
        "budget_spent": outcome.budget_spent, "elapsed_s": outcome.elapsed_s,
    }, indent=2)
