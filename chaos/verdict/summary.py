"""Per-phase summaries shown in every report."""

from __future__ import annotations

from chaos.verdict.result import PhaseStats, PhaseWindow
from chaos.verdict.stats import Record, Sample


def _ms(sample: Sample, q: float) -> float | None:
    value = sample.latency(q)
    return None if value is None else round(value * 1000, 2)


def phase_stats(records: list[Record], windows: list[PhaseWindow]) -> list[PhaseStats]:
    samples: dict[str, Sample] = {w.name: Sample() for w in windows}
    for record in records:
        if record.phase in samples:
            samples[record.phase].add(record)
    out = []
    for window in windows:
        sample = samples[window.name]
        length = max(window.end - window.start, 1e-9)
        out.append(PhaseStats(
            window.name, sample.total, dict(sorted(sample.counts.items())), sample.success_rate,
            _ms(sample, 50), _ms(sample, 95), _ms(sample, 99), _ms(sample, 100),
            round(sample.total / length, 2),
        ))
    return out
