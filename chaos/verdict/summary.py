"""Per-phase summaries shown in every report."""

from __future__ import annotations

from chaos.verdict.result import PhaseStats, PhaseWindow
from chaos.verdict.stats import Aggregate, Record, Sample


def _ms(sample: Sample, q: float) -> float | None:
    value = sample.latency(q)
    return None if value is None else round(value * 1000, 2)


def phase_stats(records: list[Record], windows: list[PhaseWindow]) -> list[PhaseStats]:
    return phase_stats_from(Aggregate(records, {w.name: w.start for w in windows}), windows)


def phase_stats_from(aggregate: Aggregate, windows: list[PhaseWindow]) -> list[PhaseStats]:
    samples = aggregate.phases
    out = []
    for window in windows:
        sample = samples.get(window.name, Sample())
        length = max(window.end - window.start, 1e-9)
        out.append(PhaseStats(
            window.name, sample.total, dict(sorted(sample.counts.items())), sample.success_rate,
            _ms(sample, 50), _ms(sample, 95), _ms(sample, 99), _ms(sample, 100),
            round(sample.total / length, 2),
        ))
    return out
