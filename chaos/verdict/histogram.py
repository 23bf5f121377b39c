"""A log-bucketed latency histogram: percentiles over all samples in bounded memory.

Like HdrHistogram with ~1% relative precision: long runs keep a few thousand
counters per phase instead of every latency, and percentiles are computed from
all samples of the phase (never an average of per-second percentiles).
"""

from __future__ import annotations

import math
from collections import Counter

_GROWTH = 1.01  # bucket width: 1% of the value
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_S = 1e-6  # 1 µs: anything faster lands in bucket 0


EXACT_LIMIT = 10_000  # below this many samples, keep them all: percentiles are exact


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile over all samples (not an average of per-second values)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class LatencyHistogram:
    """Counts latencies (seconds) in buckets of 1% relative width.

    Small samples (a second of traffic, a short phase) are also kept exactly, so
    their percentiles are exact; past EXACT_LIMIT only the buckets remain.
    """

    def __init__(self) -> None:
        self.exact: list[float] | None = []
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0
        self.min = math.inf

    def add(self, seconds: float) -> None:
        if self.exact is not None:
            self.exact.append(seconds)
            if len(self.exact) > EXACT_LIMIT:
                self.exact = None
        self.buckets[_bucket(seconds)] += 1
        self.count += 1
        self.max = max(self.max, seconds)
        self.min = min(self.min, seconds)

    def add_many(self, values: list[float]) -> None:
        """add() of each value (seconds), counting each distinct value's bucket once: a
        stream's inter-token gaps repeat (ms with one decimal), and there are thousands."""
        if not values:
            return
        if self.exact is not None:
            self.exact.extend(values)
            if len(self.exact) > EXACT_LIMIT:
                self.exact = None
        for value, n in Counter(values).items():
            self.buckets[_bucket(value)] += n
        self.count += len(values)
        self.max = max(self.max, max(values))
        self.min = min(self.min, min(values))

    def merge(self, other: LatencyHistogram) -> None:
        if self.exact is not None and other.exact is not None:
            self.exact.extend(other.exact)
            if len(self.exact) > EXACT_LIMIT:
                self.exact = None
        else:
            self.exact = None
        self.buckets.update(other.buckets)
        self.count += other.count
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile; q=100 is the exact maximum, q=0 the exact minimum."""
        if self.count == 0:
            return None
        if q >= 100:
            return self.max
        if q <= 0:
            return self.min
        if self.exact is not None:
            self.exact.sort()
            return percentile(self.exact, q)
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(max(_value(bucket), self.min), self.max)
        return self.max


def _bucket(seconds: float) -> int:
    if seconds <= _FLOOR_S:
        return 0
    return 1 + int(math.log(seconds / _FLOOR_S) / _LOG_GROWTH)


def _value(bucket: int) -> float:
    """The middle of a bucket: at most 0.5% away from any value in it."""
    if bucket == 0:
        return _FLOOR_S
    low = _FLOOR_S * _GROWTH ** (bucket - 1)
    return low * (1 + _GROWTH) / 2
