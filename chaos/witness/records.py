"""Attempt records (docs: the witness contract, section 2): one HTTP request the gateway
sent towards an upstream, as the proxy tap or the backend journal saw it.

`upstream.ndjson` holds one attempt per line (times in epoch seconds), plus the
``source`` it came from; a torn last line (a killed writer) is skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# How an attempt ended (contract section 2)
COMPLETE = "complete"
ABANDONED = frozenset({"gateway_fin", "gateway_rst", "gateway_closed"})  # the gateway gave up
ENDINGS = ("complete", "gateway_fin", "gateway_rst", "gateway_closed", "upstream_reset",
           "upstream_closed", "toxic", "refused", "open")


@dataclass(frozen=True, slots=True)
class Attempt:
    seq: int
    conn: str
    rid: str | None
    method: str | None
    path: str | None
    t: float  # first byte of the request head seen (epoch seconds in the file)
    first_byte: float | None
    end: float | None
    status: int | None
    ended: str
    retry_after: str | None = None
    events: int = 0
    source: str = ""

    @property
    def succeeded(self) -> bool:
        """A complete response that is not an error (1xx-3xx, or a 4xx other than 429)."""
        return (self.ended == COMPLETE and self.status is not None and self.status < 500
                and self.status != 429)

    @property
    def abandoned(self) -> bool:
        """The gateway side closed before the response was complete: it gave up waiting."""
        return self.ended in ABANDONED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _shared(value: Any) -> str | None:
    """One copy of text that repeats on every record (method, path, conn, source, ended):
    a long run holds every attempt, and a fresh string per field per record tripled that."""
    return None if value is None else sys.intern(str(value))


def attempt_from(raw: dict[str, Any]) -> Attempt:
    """One record of the tap, the journal or upstream.ndjson (unknown keys are ignored)."""
    status = raw.get("status")
    return Attempt(
        seq=int(raw.get("seq", 0)), conn=_shared(raw.get("conn", "")) or "",
        rid=raw.get("rid") or None, method=_shared(raw.get("method")),
        path=_shared(raw.get("path")), t=float(raw["t"]),
        first_byte=_number(raw.get("first_byte")), end=_number(raw.get("end")),
        status=None if status is None else int(status),
        ended=_shared(raw.get("ended", "open")) or "open", retry_after=raw.get("retry_after"),
        events=int(raw.get("events") or 0), source=_shared(raw.get("source", "")) or "",
    )


# What a torn line, or one that is not the record asked for, raises while it is parsed.
_UNREADABLE = (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


def parsed_lines(path: Path, build: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    """``build`` of each line of an NDJSON file, in file order; a line that is torn or
    not such a record is skipped; nothing when the file is missing."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                yield build(json.loads(line))
            except _UNREADABLE:
                continue


def read_attempts(path: Path) -> Iterator[Attempt]:
    """The attempts of upstream.ndjson, in file order; nothing when the file is missing."""
    return parsed_lines(path, attempt_from)
