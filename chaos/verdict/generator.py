"""Did the load generator deliver the arrival rate the scenario asked for?

With ``load.rate``, each phase's requested rate is compared with the arrivals that
started in it (chaos.load.arrivals). A phase short of 95%, or with any dropped arrival,
is flagged: a warning on the console and in the report, and a note in result.json.

Open arrivals (the default with a rate) make the rate a promise, so a shortfall adds an
``arrival_rate`` check with status inconclusive: a run that would pass exits 4, because
its bounds were met under less load than the scenario states, and that is not the pass
the file claims. A failing run stays failing (fail beats inconclusive): the gateway broke
a bound even under the lighter load. Closed arrivals (``arrival: closed``) make the rate a
ceiling that slow responses lower by design, so there the shortfall is a warning only.
(k6 only warns on dropped_iterations; its users gate on them with a threshold. Here the
default pool is sized for every request to take its full timeout, so a drop means the
generator, not the gateway, fell short.)
"""

from __future__ import annotations

from pathlib import Path

from chaos.load.arrivals import KEEP_UP, Arrivals, count_arrivals, describe, mode
from chaos.scenario.model import Load
from chaos.verdict.intervals import INCONCLUSIVE
from chaos.verdict.result import AssertionResult, PhaseWindow, Result

KIND = "arrival_rate"


def check_generator(load: Load, records: Path, t0: float, windows: list[PhaseWindow],
                    result: Result) -> list[AssertionResult]:
    """Fill each phase's requested/achieved arrival rate and dropped count; return the
    inconclusive checks of open-arrival phases that fell short (warnings land in
    result.load_warnings)."""
    if load.rate is None or not windows:
        return []
    arrival_mode = mode(load)
    per_phase = {item.phase: item for item in count_arrivals(records, t0, windows, load.rate)}
    checks: list[AssertionResult] = []
    for stats in result.phase_stats:
        item = per_phase.get(stats.name)
        if item is None:
            continue
        stats.requested_rate = load.rate
        stats.arrival_rate = round(item.achieved_rate, 2)
        stats.dropped_arrivals = item.dropped
        if not item.shortfall():
            continue
        text = describe(item, arrival_mode)
        result.load_warnings.append(text)
        if arrival_mode == "open":
            checks.append(_check(item, text))
    return checks


def _check(item: Arrivals, text: str) -> AssertionResult:
    observed = f"{item.achieved_rate:.1f}/s"
    if item.dropped:
        observed += f", {item.dropped} dropped"
    return AssertionResult(
        phase=item.phase, kind=KIND, bound=f">= {KEEP_UP:.0%} of {item.requested_rate:g}/s",
        observed=observed, passed=False, status=INCONCLUSIVE,
        message=text + "; the bounds were judged under less load than asked for",
        value=round(item.achieved_rate, 2))
