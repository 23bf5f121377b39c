"""TLS figures of the client's records (issue 22): requests.ndjson's tls_ms (the handshake a
request opened its connection with; none on a reused connection), its outcome and detail.

Per judged phase and for the whole run: handshakes (completed + failed), p50/p95/p99/max of
the completed ones' time, and the failures by reason. A failure is a record whose outcome
is tls_handshake_failed (the reason is its detail: "certificate verify failed: certificate
has expired", "tlsv1 alert protocol version") or a reset/close whose detail says it came
"during the TLS handshake" (chaos.load.classify.in_handshake). Per second (seconds since
t0): handshakes, failures and their reasons, which the report marks on the timeline.

One streaming pass; times go to bounded histograms (chaos.verdict.histogram). Reasons are
text the server chose, so each is cut to REASON_CHARS and a tally keeps at most
REASONS_KEPT of them (the rest counted under OTHER_REASONS): memory stays flat whatever
the server says.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.outcomes import TLS_HANDSHAKE_FAILED
from chaos.verdict.histogram import LatencyHistogram
from chaos.verdict.result import Result
from chaos.witness.records import parsed_lines

DURING = "during the TLS handshake"
REASON_CHARS = 200
REASONS_KEPT = 20  # per phase and for the whole run
SECOND_REASONS_KEPT = 5  # per second of the timeline
OTHER_REASONS = "(other reasons)"


def _ms(hist: LatencyHistogram, q: float) -> float | None:
    value = hist.percentile(q)
    return None if value is None else round(value * 1000, 2)


def _tls_ms(raw: dict[str, Any]) -> float | None:
    value = raw.get("tls_ms")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def failure(raw: dict[str, Any]) -> tuple[str, str] | None:
    """(outcome, reason) of a record whose TLS handshake failed; None otherwise."""
    outcome = str(raw.get("outcome", ""))
    detail = str(raw.get("detail", "") or "").strip()
    if outcome != TLS_HANDSHAKE_FAILED and DURING not in detail:
        return None
    reason = detail or "(no reason given)"
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return outcome, reason


class _Reasons:
    """Failures counted by (outcome, reason), at most ``kept`` distinct ones."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, key: tuple[str, str], n: int = 1) -> None:
        if key not in self.counts and len(self.counts) >= self.kept:
            key = (key[0], OTHER_REASONS)
        self.counts[key] += n

    def rows(self) -> list[dict[str, Any]]:
        """Most frequent first (ties by outcome, then reason: the same order every run)."""
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"outcome": o, "reason": r, "count": n} for (o, r), n in ordered]


@dataclass
class TlsTally:
    """One phase's (or the whole run's) handshakes."""

    times: LatencyHistogram = field(default_factory=LatencyHistogram)  # seconds, completed
    completed: int = 0
    failed: int = 0
    reasons: _Reasons = field(default_factory=lambda: _Reasons(REASONS_KEPT))

    def add(self, tls_ms: float | None, failed: tuple[str, str] | None) -> None:
        if failed is not None:
            self.failed += 1
            self.reasons.add(failed)
        elif tls_ms is not None:
            self.completed += 1
            self.times.add(tls_ms / 1000.0)

    def merge(self, other: TlsTally) -> None:
        self.times.merge(other.times)
        self.completed += other.completed
        self.failed += other.failed
        for key, n in other.reasons.counts.items():
            self.reasons.add(key, n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "handshakes": self.completed + self.failed,
            "completed": self.completed,
            "failed": self.failed,
            "tls_p50_ms": _ms(self.times, 50),
            "tls_p95_ms": _ms(self.times, 95),
            "tls_p99_ms": _ms(self.times, 99),
            "tls_max_ms": _ms(self.times, 100),
            "failures": self.reasons.rows(),
        }


@dataclass
class _Second:
    handshakes: int = 0
    failed: int = 0
    reasons: _Reasons = field(default_factory=lambda: _Reasons(SECOND_REASONS_KEPT))


class TlsFigures:
    """Per judged phase, the whole run and per second, from raw records."""

    def __init__(self, t0: float, end: float, phases: Iterable[str]) -> None:
        self.t0, self.seconds = t0, max(0, int(math.ceil(end)))
        self.phases = {name: TlsTally() for name in phases}
        self.outside = 0  # handshakes of records outside the judged phases (warm-up)
        self._second: dict[int, _Second] = {}

    def add(self, raw: dict[str, Any]) -> None:
        tls_ms, failed = _tls_ms(raw), failure(raw)
        if tls_ms is None and failed is None:
            return  # plain HTTP, or a request on a connection already open
        tally = self.phases.get(str(raw.get("phase", "")))
        if tally is None:
            self.outside += 1
        else:
            tally.add(tls_ms, failed)
        t = raw.get("t")
        if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
            return
        start = float(t) - self.t0
        if not 0 <= start < self.seconds:
            return
        second = self._second.setdefault(int(start), _Second())
        second.handshakes += 1
        if failed is not None:
            second.failed += 1
            second.reasons.add(failed)

    def any(self) -> bool:
        """Some record, judged or not, opened a TLS connection or failed its handshake."""
        return self.outside > 0 or any(t.completed or t.failed for t in self.phases.values())

    def whole(self) -> TlsTally:
        total = TlsTally()
        for tally in self.phases.values():
            total.merge(tally)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "whole": self.whole().to_dict(),
            "by_phase": {name: t.to_dict() for name, t in self.phases.items()},
            "outside_phases": self.outside,
        }

    def timeline(self) -> list[dict[str, Any]]:
        """One row per second with a handshake: handshakes, failures and their reasons."""
        return [
            {"t": s, "handshakes": row.handshakes, "failed": row.failed, "failures": row.reasons.rows()}
            for s, row in sorted(self._second.items())
        ]


def tls_figures(records: Path, t0: float, end: float, phases: Iterable[str]) -> TlsFigures:
    """The figures of a requests.ndjson (a torn last line is skipped)."""
    figures = TlsFigures(t0, end, phases)
    for raw in parsed_lines(records, dict):
        if isinstance(raw, dict):
            figures.add(raw)
    return figures


def store_tls(result: Result, figures: TlsFigures) -> None:
    """result.tls and result.tls_timeline; left empty for a run without TLS."""
    if not figures.any():
        return
    result.tls = figures.to_dict()
    result.tls_timeline = figures.timeline()
