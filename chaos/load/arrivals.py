"""Arrival modes, and what the harness reads back about arrivals (never imports Locust).

``open`` (the default when ``load.rate`` is set) is k6's constant-arrival-rate: arrivals
on a fixed clock whatever the responses do, served by a pool of at most
``load.max_in_flight`` requests in flight (default: enough for every request to take its
full timeout, so only a request outliving its timeouts or a starved generator drops one);
an arrival that finds the pool full is dropped and counted (k6's dropped_iterations).
``users`` and ``spawn_rate`` do not apply to open arrivals. ``closed`` is Locust's
``constant_throughput``: each user waits for its response and aims at rate / users, so
arrivals fall when responses slow.

The locustfile writes, next to the request records:
- ``dropped.ndjson``: one ``{"t": scheduled epoch}`` line per dropped arrival;
- ``load-status/<pid>.json``: each process's requests in flight and dropped so far,
  rewritten a few times a second (the console's live line reads them).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.scenario.model import Load
from chaos.witness.records import parsed_lines

DROPPED_FILE = "dropped.ndjson"
STATUS_DIR = "load-status"
KEEP_UP = 0.95  # achieved / requested below this: the generator did not keep up
STALE_S = 3.0  # a status file older than this belongs to a process that is gone


def mode(load: Load) -> str:
    """open or closed; open needs a rate (the loader refuses `arrival: open` without one)."""
    if load.rate is None:
        return "closed"
    return load.arrival or "open"


def pool_size(load: Load) -> int:
    """Open arrivals: requests in flight at most, over all processes (Little's law bound)."""
    if load.max_in_flight is not None:
        return load.max_in_flight
    return max(1, math.ceil((load.rate or 0) * (load.connect_timeout + load.timeout)))


def schedulers(load: Load) -> int:
    """Open mode runs one scheduler per Locust process, each with its share of the rate."""
    if load.expect_workers:
        return load.expect_workers
    return max(load.processes, 1)


def in_flight(run_dir: Path, now: float | None = None) -> tuple[int, int] | None:
    """(requests in flight, arrivals dropped so far) over every live Locust process."""
    now = time.time() if now is None else now
    folder = run_dir / STATUS_DIR
    flying = dropped = 0
    seen = False
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - float(status.get("t", 0)) > STALE_S:
            continue
        seen = True
        flying += int(status.get("in_flight", 0))
        dropped += int(status.get("dropped", 0))
    return (flying, dropped) if seen else None


@dataclass(frozen=True)
class Arrivals:
    """One phase: arrivals that started, and those dropped, against what was asked."""

    phase: str
    seconds: float
    requested_rate: float | None
    started: int
    dropped: int

    @property
    def achieved_rate(self) -> float:
        return self.started / self.seconds if self.seconds > 0 else 0.0

    def shortfall(self) -> bool:
        """Dropped arrivals, or fewer started than 95% of those asked for (one arrival of
        slack: a window of a fixed clock holds floor or ceil of rate x seconds)."""
        if self.dropped:
            return True
        if not self.requested_rate:
            return False
        wanted = self.requested_rate * self.seconds
        return self.started < KEEP_UP * wanted - 1


def _times(path: Path) -> Iterable[float]:
    """The ``t`` of each line (a torn last line skipped; nothing when the file is missing)."""
    return parsed_lines(path, lambda raw: float(raw["t"]))


def count_arrivals(records: Path, t0: float, windows: list[Any], rate: float | None,
                   ) -> list[Arrivals]:
    """Per phase window (name, start, end in seconds since t0): requests that started in it
    (by their start time, not the phase they ended in) and arrivals dropped in it."""
    bounds = [(w.name, float(w.start), float(w.end)) for w in windows]
    started = _bin(_times(records), t0, bounds)
    dropped = _bin(_times(records.with_name(DROPPED_FILE)), t0, bounds)
    return [Arrivals(name, round(end - start, 3), rate, started[name], dropped[name])
            for name, start, end in bounds]


def _bin(times: Iterable[float], t0: float, bounds: list[tuple[str, float, float]],
         ) -> dict[str, int]:
    counts = {name: 0 for name, _, _ in bounds}
    for moment in times:
        offset = moment - t0
        for name, start, end in bounds:
            if start <= offset < end:
                counts[name] += 1
                break
    return counts


def describe(item: Arrivals, arrival_mode: str) -> str:
    """One line for the console, the report and the verdict note."""
    asked = "" if not item.requested_rate else f" of {item.requested_rate:g}/s requested"
    pct = ("" if not item.requested_rate else
           f" ({item.achieved_rate / item.requested_rate:.0%})")
    text = (f"phase {item.phase}: the load generator could not keep up: "
            f"{item.achieved_rate:.1f} arrivals/s{asked}{pct}")
    if item.dropped:
        text += (f", {item.dropped} arrival{'s' if item.dropped != 1 else ''} dropped "
                 "(load.max_in_flight requests were in flight: raise it)")
    elif arrival_mode == "closed":
        text += " (closed-loop: each user waits for its response; arrival: open holds the rate)"
    return text

