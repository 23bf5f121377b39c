"""Durations, sizes and comparisons as they are written in scenario files."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION_S = 7 * 24 * 3600.0


def parse_duration(value: Any) -> float:
    """'250ms', '10s', '1.5m' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 250ms or 10s")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 250ms or 10s, got {value!r}")
    if seconds < 0 or seconds > MAX_DURATION_S:
        raise ValueError(f"duration {value!r} is out of range (0 to 7 days)")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*(.+?)\s*$")


@dataclass(frozen=True)
class Comparison:
    """A bound such as '>= 0.99' or '< 300ms'; durations are held in seconds."""

    op: str
    value: float
    text: str
    is_duration: bool = False

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.value)

    def __str__(self) -> str:
        return self.text


def parse_comparison(value: Any) -> Comparison:
    if isinstance(value, Comparison):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number or a comparison like '>= 0.99' or '< 300ms'")
    if isinstance(value, int | float):
        return Comparison("==", float(value), f"== {value}")
    if not isinstance(value, str) or not (match := _COMPARISON.match(value)):
        raise ValueError(f"expected a comparison like '>= 0.99' or '< 300ms', got {value!r}")
    op = match.group(1) or "=="
    raw = match.group(2)
    try:
        number, is_duration = float(raw), False
    except ValueError:
        try:
            number, is_duration = parse_duration(raw), True
        except ValueError:
            raise ValueError(
                f"expected a comparison like '>= 0.99' or '< 300ms', got {value!r}"
            ) from None
    return Comparison("==" if op == "=" else op, number, f"{op} {raw}", is_duration)


ComparisonField = Annotated[
    Comparison, BeforeValidator(parse_comparison), PlainSerializer(lambda c: c.text)
]
