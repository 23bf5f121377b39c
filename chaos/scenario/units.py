"""Durations, sizes and comparisons as they are written in scenario files."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|µs|ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION_S = 7 * 24 * 3600.0


def shown(value: Any) -> str:
    """repr of a value, cut short: a 5000-digit number stays a readable error line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def parse_duration(value: Any) -> float:
    """'250ms', '10s', '1.5m' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 250ms or 10s")
    if isinstance(value, int | float):
        seconds = _finite(value, "duration")
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 250ms or 10s, got {shown(value)}")
    if not 0 <= seconds <= MAX_DURATION_S:  # also refuses NaN
        raise ValueError(f"duration {shown(value)} is out of range (0 to 7 days)")
    return seconds


def _finite(value: float, what: str) -> float:
    """A float that is a real number (huge ints overflow, NaN and inf mean nothing here)."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{what} {shown(value)} is too large") from None
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{what} must be a finite number, got {shown(value)}")
    return number


def format_duration(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(us|µs|ms|s|m|h)?\s*$"},
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
    ],
    "description": "a duration: 250ms, 10s, 1.5m, or a number of seconds",
}
Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration),
                     WithJsonSchema(_DURATION_SCHEMA)]


def at_least(minimum: float) -> Callable[[Any], float]:
    """A duration that must be at least `minimum` seconds (a 0s timeout or poll interval
    passes validation and then breaks the run: no request ever completes, a loop spins)."""
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < minimum:
            raise ValueError(f"must be at least {format_duration(minimum)}, got {shown(value)}")
        return seconds
    return parse


def _min_duration_schema(minimum: float) -> dict[str, Any]:
    number = {"type": "number", "minimum": minimum, "maximum": MAX_DURATION_S}
    return {**_DURATION_SCHEMA, "anyOf": [_DURATION_SCHEMA["anyOf"][0], number],
            "description": f"a duration of at least {format_duration(minimum)}: 250ms, 10s, "
            "1.5m, or a number of seconds"}


Timeout = Annotated[float, BeforeValidator(at_least(0.001)), PlainSerializer(format_duration),
                    WithJsonSchema(_min_duration_schema(0.001))]  # 0s: nothing could complete
PollInterval = Annotated[float, BeforeValidator(at_least(0.01)), PlainSerializer(format_duration),
                         WithJsonSchema(_min_duration_schema(0.01))]  # 0s: a loop that spins
SnapshotInterval = Annotated[float, BeforeValidator(at_least(0.1)),
                             PlainSerializer(format_duration),
                             WithJsonSchema(_min_duration_schema(0.1))]

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
    explicit: bool = True  # False when written without an operator ("300ms", 0)

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.value)

    def defaulting(self, op: str) -> Comparison:
        """A bare value means `op` for this kind of bound (latency 300ms means <= 300ms)."""
        if self.explicit:
            return self
        return Comparison(op, self.value, f"{op} {self.text.split(' ', 1)[1]}", self.is_duration,
                          True)

    def __str__(self) -> str:
        return self.text


def parse_comparison(value: Any) -> Comparison:
    if isinstance(value, Comparison):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number or a comparison like '>= 0.99' or '< 300ms'")
    if isinstance(value, int | float):
        return Comparison("==", _finite(value, "bound"), f"== {value}", explicit=False)
    if not isinstance(value, str) or not (match := _COMPARISON.match(value)):
        raise ValueError(f"expected a comparison like '>= 0.99' or '< 300ms', got {shown(value)}")
    op = match.group(1) or "=="
    raw = match.group(2)
    try:
        number, is_duration = float(raw), False
    except ValueError:
        try:
            number, is_duration = parse_duration(raw), True
        except ValueError:
            raise ValueError(
                f"expected a comparison like '>= 0.99' or '< 300ms', got {shown(value)}"
            ) from None
    _finite(number, "bound")
    return Comparison("==" if op == "=" else op, number, f"{'==' if op == '=' else op} {raw}",
                      is_duration, explicit=match.group(1) is not None)


_COMPARISON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(>=|<=|==|!=|>|<|=)?\s*\S.*$"},
        {"type": "number"},
    ],
    "description": "a bound such as '>= 0.99' or '< 300ms', or a number meaning == number",
}
ComparisonField = Annotated[
    Comparison, BeforeValidator(parse_comparison), PlainSerializer(lambda c: c.text),
    WithJsonSchema(_COMPARISON_SCHEMA),
]
