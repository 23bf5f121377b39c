"""Confidence intervals: a verdict on a rate uses the interval, not the point.

With 40 requests, 40 successes do not prove a 99% success rate; the Wilson
interval says so, and the verdict becomes "inconclusive" instead of "pass".
"""

from __future__ import annotations

import math
from statistics import NormalDist

from chaos.scenario.units import Comparison

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"


def z_for(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if total <= 0:
        return 0.0, 1.0
    z = z_for(confidence)
    p = min(max(successes / total, 0.0), 1.0)  # a hand-edited result.json may overcount
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def judge_interval(bound: Comparison, low: float, high: float, point: float) -> str:
    """pass when the whole interval satisfies the bound, fail when none of it does."""
    op, value = bound.op, bound.value
    if op in (">=", ">"):
        holds_low = low >= value if op == ">=" else low > value
        fails_high = high < value if op == ">=" else high <= value
    elif op in ("<=", "<"):
        holds_low = high <= value if op == "<=" else high < value
        fails_high = low > value if op == "<=" else low >= value
    else:  # == and != compare the point: an interval cannot prove equality
        return PASS if bound.holds(point) else FAIL
    if holds_low:
        return PASS
    if fails_high:
        return FAIL
    return INCONCLUSIVE
