"""Statistics over request records: counts, rates and exact percentiles."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.load.classify import OUTCOMES, SUCCESSES


@dataclass(frozen=True)
class Record:
    t: float  # seconds since the first phase started
    phase: str
    outcome: str
    latency_s: float
    status: int
    detail: str


def read_records(path: Path, t0: float) -> Iterator[Record]:
    """Records from the locustfile's NDJSON; a torn last line (killed writer) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                raw: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield Record(
                t=float(raw["t"]) - t0, phase=str(raw.get("phase", "")),
                outcome=str(raw.get("outcome", "other")),
                latency_s=float(raw.get("latency_ms", 0.0)) / 1000.0,
                status=int(raw.get("status", 0)), detail=str(raw.get("detail", "")),
            )


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile over all samples (not an average of per-second values)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Sample:
    """The records of one phase (or of the whole run), summarised."""

    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.counts[record.outcome] += 1
        self.latencies.append(record.latency_s)

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
        self.latencies.sort()
        return percentile(self.latencies, q)

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
