"""Statistics over request records: counts, rates and percentiles, in one streaming pass.

Records stay on disk; what is kept in memory is per-phase and per-second
aggregates (counters and log-bucketed latency histograms), so memory stays flat
however long a run lasts.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.outcomes import OUTCOMES, SUCCESSES
from chaos.verdict.histogram import LatencyHistogram
from chaos.verdict.recovery import Slots
from chaos.witness.records import parsed_lines


@dataclass(frozen=True)
class Record:
    t: float  # seconds since the first phase started
    phase: str
    outcome: str
    latency_s: float
    status: int
    detail: str
    request: str = ""  # its load.requests[].name
    # issue 18: the request id it carried, its method, the gateway's own retry count header
    rid: str | None = None
    method: str | None = None
    hdr_retries: int | None = None


def read_records(path: Path, t0: float) -> Iterator[Record]:
    """Records from the locustfile's NDJSON; a torn last line (killed writer) is skipped."""

    def record(raw: dict[str, Any]) -> Record:
        return Record(
            t=float(raw["t"]) - t0, phase=str(raw.get("phase", "")),
            outcome=str(raw.get("outcome", "other")),
            latency_s=float(raw.get("latency_ms", 0.0)) / 1000.0,
            status=int(raw.get("status", 0)), detail=str(raw.get("detail", "")),
            request=str(raw.get("name", "")), rid=_str_or_none(raw.get("rid")),
            method=_str_or_none(raw.get("method")),
            hdr_retries=_int_or_none(raw.get("hdr_retries")),
        )

    return parsed_lines(path, record)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Sample:
    """The records of one phase (or second, or of the whole run), summarised."""

    counts: Counter[str] = field(default_factory=Counter)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)

    def add(self, record: Record) -> None:
        self.counts[record.outcome] += 1
        self.histogram.add(record.latency_s)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def successes(self) -> int:
        return sum(self.counts[o] for o in SUCCESSES)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.total if self.total else None

    def latency(self, q: float) -> float | None:
        return self.histogram.percentile(q)

    def count(self, *outcomes: str) -> int:
        return sum(self.counts[o] for o in outcomes)


def by_phase(records: Iterable[Record]) -> dict[str, Sample]:
    samples: dict[str, Sample] = {}
    for record in records:
        samples.setdefault(record.phase, Sample()).add(record)
    return samples


def timeline(records: Iterable[Record], end: float) -> list[dict[str, Any]]:
    """Per-second buckets from 0 to end: counts per outcome and latency percentiles (ms)."""
    buckets: dict[int, Sample] = {}
    for record in records:
        if 0 <= record.t < end:
            buckets.setdefault(int(record.t), Sample()).add(record)
    return timeline_rows(buckets, end)


class Aggregate:
    """One pass over the records: per phase, per second, and per 10 ms slot (recovery)."""

    def __init__(self, records: Iterable[Record], phase_starts: dict[str, float],
                 open_intervals: list[tuple[float, float]] | None = None,
                 requests: Collection[str] | None = None) -> None:
        self.open_intervals = sorted(open_intervals or [])
        self.while_open: dict[str, Sample] = {name: Sample() for name in phase_starts}
        self.phases: dict[str, Sample] = {name: Sample() for name in phase_starts}
        self.whole = Sample()
        # (phase, request name) -> its records, phase None: the whole run; kept for the
        # names `request:` bounds ask about (None: all; each costs a histogram per record)
        self.scoped = None if requests is None else frozenset(requests)
        self.requests: dict[tuple[str | None, str], Sample] = {}
        self.seconds: dict[int, Sample] = {}
        self.slots = Slots()  # chaos.verdict.recovery
        for record in records:
            self.add(record, phase_starts)

    def add(self, record: Record, phase_starts: dict[str, float]) -> None:
        if record.t >= 0:
            self.seconds.setdefault(int(record.t), Sample()).add(record)
            self.slots.add(record.t, record.outcome in SUCCESSES)
        start = phase_starts.get(record.phase)
        if start is None:
            return  # warm-up or cool-down traffic: not judged
        self.phases[record.phase].add(record)
        self.whole.add(record)
        if self.scoped is None or record.request in self.scoped:
            for scope in (record.phase, None):
                self.requests.setdefault((scope, record.request), Sample()).add(record)
        if self.open_intervals and _inside(record.t + record.latency_s, self.open_intervals):
            self.while_open[record.phase].add(record)

    def timeline(self, end: float) -> list[dict[str, Any]]:
        return timeline_rows(self.seconds, end)


def _inside(moment: float, intervals: list[tuple[float, float]]) -> bool:
    index = bisect.bisect_right(intervals, (moment, math.inf)) - 1
    return index >= 0 and intervals[index][0] <= moment <= intervals[index][1]


def timeline_rows(buckets: dict[int, Sample], end: float) -> list[dict[str, Any]]:
    rows = []
    for second in range(int(math.ceil(end))):
        sample = buckets.get(second, Sample())
        row: dict[str, Any] = {"t": second, "total": sample.total}
        row.update({o: sample.counts[o] for o in OUTCOMES})
        for q in (50, 95, 99):
            value = sample.latency(q)
            row[f"p{q}_ms"] = None if value is None else round(value * 1000, 2)
        rows.append(row)
    return rows
