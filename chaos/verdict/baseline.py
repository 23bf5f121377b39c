"""`chaos run --baseline OLD/result.json`: is this run worse than a previous one?

Compared per phase present in both runs: p99 latency and success rate; for the whole
run: recovery time and how long the breaker took to open after the first fault.

Noise is allowed for, not ignored:
- success rates are compared on their Wilson intervals (at the scenario's
  confidence): a regression only when the new interval lies entirely below the old
  one (they do not overlap, in the worse direction);
- latencies and times regress only beyond `tolerance` (relative, default 50%) *and* a
  fixed floor (50 ms for p99, 1 s for recovery and breaker timing), because a 2 ms
  p99 becoming 4 ms is timer noise, not a regression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chaos.outcomes import BREAKER_OPEN, SUCCESS
from chaos.verdict.derived import enrich
from chaos.verdict.intervals import wilson
from chaos.verdict.result import PhaseStats, Result

DEFAULT_TOLERANCE = 0.5
P99_FLOOR_MS = 50.0
TIME_FLOOR_S = 1.0


@dataclass
class BaselineCheck:
    metric: str  # p99_ms | success_rate | recovery_s | breaker_open_s
    phase: str  # a phase name, or "(run)"
    old: float | None
    new: float | None
    limit: str  # what "worse beyond tolerance" meant for this check
    regressed: bool
    detail: str = ""


def _successes(stats: PhaseStats) -> int:
    return sum(stats.counts.get(k, 0) for k in SUCCESS)


def breaker_open_s(result: Result) -> float | None:
    """Seconds from the first fault to the breaker's first move to open (None: never)."""
    if not result.faults:
        return None
    first = min(f.start for f in result.faults)
    opened = [t.t for t in result.breaker_transitions if t.to_state == BREAKER_OPEN and t.t >= first]
    return round(opened[0] - first, 3) if opened else None


def _later(metric: str, phase: str, old: float | None, new: float | None, tolerance: float,
           floor: float, unit: str, never: str) -> BaselineCheck | None:
    """A time or latency: worse when larger than old*(1+tolerance) and old+floor."""
    if old is None and new is None:
        return None
    if old is None:
        return BaselineCheck(metric, phase, old, new, "-", False, "the baseline has no value")
    limit = max(old * (1 + tolerance), old + floor)
    text = f"<= {limit:.3g}{unit}"
    if new is None:
        return BaselineCheck(metric, phase, old, new, text, True, never)
    worse = new > limit
    detail = f"{old:.3g}{unit} -> {new:.3g}{unit}"
    return BaselineCheck(metric, phase, old, new, text, worse, detail)


def compare(old: Result, new: Result, tolerance: float = DEFAULT_TOLERANCE,
            confidence: float = 0.95) -> list[BaselineCheck]:
    enrich(old)
    enrich(new)
    checks: list[BaselineCheck] = []
    old_phases = {p.name: p for p in old.phase_stats}
    for stats in new.phase_stats:
        before = old_phases.get(stats.name)
        if before is None:
            continue
        item = _later("p99_ms", stats.name, before.p99_ms, stats.p99_ms, tolerance,
                      P99_FLOOR_MS, "ms", "no latency measured in this run")
        if item is not None:
            checks.append(item)
        if before.total and stats.total:
            old_low, old_high = wilson(_successes(before), before.total, confidence)
            new_low, new_high = wilson(_successes(stats), stats.total, confidence)
            worse = new_high < old_low
            checks.append(BaselineCheck(
                "success_rate", stats.name, round(_successes(before) / before.total, 4),
                round(_successes(stats) / stats.total, 4),
                f"interval must overlap [{old_low:.4f}, {old_high:.4f}]", worse,
                f"[{old_low:.4f}, {old_high:.4f}] -> [{new_low:.4f}, {new_high:.4f}] "
                f"at {confidence:.0%}"))
    if old.recovered is False and new.recovered is False:
        pass  # neither recovered: nothing got worse
    elif new.recovered is False:
        checks.append(BaselineCheck("recovery_s", "(run)", old.recovery_s, None, "recovers",
                                    True, "the baseline recovered; this run never did"))
    elif (item := _later("recovery_s", "(run)", old.recovery_s, new.recovery_s, tolerance,
                         TIME_FLOOR_S, "s", "")) is not None:
        checks.append(item)
    item = _later("breaker_open_s", "(run)", breaker_open_s(old), breaker_open_s(new),
                  tolerance, TIME_FLOOR_S, "s",
                  "the breaker opened in the baseline, never in this run")
    if item is not None:
        checks.append(item)
    return checks


def regression_field(path: str, old: Result, checks: list[BaselineCheck],
                     tolerance: float) -> dict[str, Any]:
    """What result.json carries under `regression`."""
    return {"baseline": path, "baseline_run_id": old.run_id, "tolerance": tolerance,
            "regressed": any(c.regressed for c in checks),
            "checks": [asdict(c) for c in checks]}


def apply_baseline(result: Result, old: Result, path: str,
                   tolerance: float = DEFAULT_TOLERANCE, confidence: float = 0.95) -> bool:
    """Compare, store the comparison on the result, fail its exit code on a regression."""
    checks = compare(old, result, tolerance, confidence)
    result.regression = regression_field(path, old, checks, tolerance)
    regressed = bool(result.regression["regressed"])
    if regressed and result.exit_code in (0, 4):
        result.exit_code = 1
    return regressed


def render_text(regression: dict[str, Any]) -> str:
    """The console's regression section."""
    lines = [f"regression check against {regression['baseline']} "
             f"(tolerance {regression['tolerance']:g}):"]
    for c in regression["checks"]:
        mark = "REGRESSION" if c["regressed"] else "ok"
        lines.append(f"  {mark:<10} [{c['phase']}] {c['metric']}: {c['detail']} ({c['limit']})")
    lines.append("  verdict: REGRESSION" if regression["regressed"] else "  verdict: no regression")
    return "\n".join(lines)
