"""Token figures of LLM records (requests.ndjson's ttft_ms, itl_ms, tokens, status,
retry_after): per phase for the assertions (time to first token, inter-token gaps, client
statuses, Retry-After on the gateway's 429s) and per second for the report (tokens/s,
TTFT p50/p95, inter-token p99 beside the outcome timeline).

One streaming pass; latencies go to bounded histograms (chaos.verdict.histogram), so a long
run's 2000 gaps per stream never sit in memory. Times in the timeline are seconds since t0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.verdict.histogram import LatencyHistogram

LLM_KEYS = ("ttft_ms", "itl_ms", "tokens", "finish_reason")
_NUMBERS = (int, float)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0 else None


def _ms(hist: LatencyHistogram, q: float) -> float | None:
    """A percentile of seconds in milliseconds, to 0.1 ms (None: no values)."""
    value = hist.percentile(q)
    return None if value is None else round(value * 1000, 1)


def gaps(raw: dict[str, Any]) -> list[float]:
    """A record's inter-token gaps in seconds (itl_ms; what is not a number is left out)."""
    found = raw.get("itl_ms")
    if not isinstance(found, list):
        return []
    # one pass, thousands a record: a finite number >= 0 (NaN fails the comparison), not bool
    return [g / 1000.0 for g in found if type(g) in _NUMBERS and 0 <= g < math.inf]


@dataclass
class TokenTally:
    """One phase's (or the whole run's) token figures and client statuses."""

    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)  # seconds
    itl: LatencyHistogram = field(default_factory=LatencyHistogram)  # seconds
    requests: int = 0
    streamed: int = 0  # records with a ttft_ms (a streaming request that got a token)
    llm_records: int = 0  # records carrying any LLM field
    tokens: int = 0
    itl_more: int = 0  # gaps the load dropped past its 2000 per request
    statuses: Counter[int] = field(default_factory=Counter)
    answered_429: int = 0
    with_retry_after: int = 0  # of those 429s
    retry_after_recorded: bool = False  # some record carried the retry_after field

    def add(self, raw: dict[str, Any], itl: list[float] | None = None) -> None:
        self.requests += 1
        status = raw.get("status")
        if isinstance(status, int) and status > 0:
            self.statuses[status] += 1
        if "retry_after" in raw:
            self.retry_after_recorded = True
        if status == 429:
            self.answered_429 += 1
            self.with_retry_after += raw.get("retry_after") not in (None, "")
        if not any(key in raw for key in LLM_KEYS):
            return
        self.llm_records += 1
        tokens = _number(raw.get("tokens"))
        self.tokens += int(tokens or 0)
        ttft = _number(raw.get("ttft_ms"))
        if ttft is not None:
            self.streamed += 1
            self.ttft.add(ttft / 1000.0)
        self.itl.add_many(gaps(raw) if itl is None else itl)
        self.itl_more += int(_number(raw.get("itl_more")) or 0)

    def merge(self, other: TokenTally) -> None:
        self.ttft.merge(other.ttft)
        self.itl.merge(other.itl)
        self.statuses.update(other.statuses)
        for name in ("requests", "streamed", "llm_records", "tokens", "itl_more",
                     "answered_429", "with_retry_after"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry_after_recorded |= other.retry_after_recorded

    def to_dict(self) -> dict[str, Any]:
        return {"llm_records": self.llm_records, "streamed": self.streamed,
                "tokens": self.tokens, "ttft_p50_ms": _ms(self.ttft, 50),
                "ttft_p95_ms": _ms(self.ttft, 95), "ttft_p99_ms": _ms(self.ttft, 99),
                "ttft_max_ms": _ms(self.ttft, 100), "itl_p50_ms": _ms(self.itl, 50),
                "itl_p95_ms": _ms(self.itl, 95), "itl_p99_ms": _ms(self.itl, 99),
                "itl_max_ms": _ms(self.itl, 100), "itl_gaps": self.itl.count,
                "itl_more": self.itl_more,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "answered_429": self.answered_429, "with_retry_after": self.with_retry_after}


@dataclass
class _Second:
    tokens: float = 0.0
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)
    itl: LatencyHistogram = field(default_factory=LatencyHistogram)


class TokenFigures:
    """Per phase (the judged ones), the whole run and per second, from raw records."""

    def __init__(self, t0: float, end: float, phases: Iterable[str]) -> None:
        self.t0, self.seconds = t0, max(0, int(math.ceil(end)))
        self.phases = {name: TokenTally() for name in phases}
        self._second: dict[int, _Second] = {}

    def add(self, raw: dict[str, Any]) -> None:
        tally = self.phases.get(str(raw.get("phase", "")))
        if tally is None:
            return  # warm-up or cool-down traffic: not judged, not drawn
        itl = gaps(raw)
        tally.add(raw, itl)
        if any(key in raw for key in LLM_KEYS):
            self._per_second(raw, itl)

    def _per_second(self, raw: dict[str, Any], itl: list[float]) -> None:
        start = _number(float(raw["t"]) - self.t0) if isinstance(raw.get("t"), int | float) \
            else None
        if start is None or int(start) >= self.seconds:
            return
        second = self._at(int(start))
        ttft = _number(raw.get("ttft_ms"))
        if ttft is not None:
            second.ttft.add(ttft / 1000.0)
        second.itl.add_many(itl)
        tokens = _number(raw.get("tokens")) or 0.0
        if tokens:  # spread over the stream: from its first token to its end
            first = start + (ttft or 0.0) / 1000.0
            last = max(first, start + (_number(raw.get("latency_ms")) or 0.0) / 1000.0)
            self._spread(tokens, first, last)

    def _spread(self, tokens: float, first: float, last: float) -> None:
        if last - first < 1e-6:
            self._at(int(first)).tokens += tokens
            return
        rate = tokens / (last - first)
        s = int(first)
        while s <= int(last) and s < self.seconds:
            share = min(last, s + 1) - max(first, s)
            if share > 0:
                self._at(s).tokens += rate * share
            s += 1

    def _at(self, s: int) -> _Second:
        return self._second.setdefault(s, _Second())

    def whole(self) -> TokenTally:
        total = TokenTally()
        for tally in self.phases.values():
            total.merge(tally)
        return total

    def tally(self, phase: str, whole: str) -> TokenTally:
        """One phase's figures, or the whole run's when ``phase`` is ``whole``."""
        return self.whole() if phase == whole else self.phases.get(phase, TokenTally())

    def any(self) -> bool:
        """Some judged record was an LLM record."""
        return any(t.llm_records for t in self.phases.values())

    def timeline(self) -> list[dict[str, Any]]:
        """One row per second with LLM traffic: tokens/s, TTFT p50/p95, inter-token p99."""
        return [{"t": s, "tokens_per_s": round(row.tokens, 1), "ttft_p50_ms": _ms(row.ttft, 50),
                 "ttft_p95_ms": _ms(row.ttft, 95), "itl_p99_ms": _ms(row.itl, 99)}
                for s, row in sorted(self._second.items()) if 0 <= s < self.seconds]
