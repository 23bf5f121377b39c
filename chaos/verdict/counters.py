"""How much a sampled monotonic counter grew between two instants.

Probe samples fall wherever the poller happened to read (every few hundred ms), not on
phase bounds; taking the nearest samples instead of the bounds counts requests of the
neighbouring phases (or misses some), which made a 1:1 counter read 0.96 or 1.05. The
counter is read at the bounds by linear interpolation between the samples around them.
A drop is a restart counting from zero (as Prometheus' increase() reads it): the segment
grew by its end value.
"""

from __future__ import annotations

SLACK = 0.5  # seconds of a phase the samples may leave uncovered at either end


def growth(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Counter growth over [start, end]; None unless the samples span it (within SLACK)."""
    points = sorted(samples)
    if len(points) < 2 or points[0][0] > start + SLACK or points[-1][0] < end - SLACK:
        return None
    total, covered = 0.0, False
    for (t1, v1), (t2, v2) in zip(points, points[1:], strict=False):
        low, high = max(t1, start), min(t2, end)
        if t2 <= t1 or high <= low:
            continue
        covered = True
        grew = v2 - v1 if v2 >= v1 else v2
        total += grew * (high - low) / (t2 - t1)
    return total if covered else None
