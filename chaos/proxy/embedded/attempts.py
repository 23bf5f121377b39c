"""Attempt records and the per-proxy ring that holds them for ``/proxies/{name}/attempts``.

An attempt is one HTTP request the gateway sent towards the upstream (or one
connection that carried none, e.g. a refused dial), in the shape of the issue 18
contract (``notes/witness-contract.md`` section 2). A record gets its ``seq``
when it ends, so that ``?after=`` pages never skip a record that was still being
written: an attempt still open is listed only with ``?open=1`` (``seq`` null,
``ended`` "open"), and listed again, for good, once it ended.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import deque
from typing import Any

RING = 100_000
DEFAULT_LIMIT = 10_000
DEFAULT_HEADER = "X-Chaos-Request-Id"
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_PATH = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
ENV = "CHAOS_PROXY_TAP"


def tap_default() -> bool:
    """On unless ``CHAOS_PROXY_TAP`` says 0 / false / no / off."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class Attempt:
    __slots__ = ("seq", "conn", "rid", "method", "path", "t", "first_byte", "end", "status",
                 "ended", "retry_after", "events", "sse")

    def __init__(self, conn: str, t: float) -> None:
        self.seq: int | None = None
        self.conn = conn
        self.rid: str | None = None
        self.method: str | None = None
        self.path: str | None = None
        self.t = t
        self.first_byte: float | None = None
        self.end: float | None = None
        self.status: int | None = None
        self.ended = "open"
        self.retry_after: str | None = None
        self.events = 0
        self.sse = False

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "conn": self.conn, "rid": self.rid, "method": self.method,
                "path": self.path, "t": self.t, "first_byte": self.first_byte, "end": self.end,
                "status": self.status, "ended": self.ended, "retry_after": self.retry_after,
                "events": self.events if self.sse else None}


class TapSettings:
    """Where the request id is read: a header, and optionally a JSON body field path."""

    def __init__(self, header: str = DEFAULT_HEADER, field: str | None = None) -> None:
        self.header = header
        self.key = header.lower().encode("latin-1")
        self.field = field
        self.path = field.split(".") if field else []

    def to_json(self) -> dict[str, Any]:
        return {"request_id_header": self.header, "request_id_field": self.field}


def parse_settings(body: object, base: TapSettings) -> TapSettings:
    """``POST /proxies/{name}/tap``; ValueError names the bad field."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    unknown = set(body) - {"request_id_header", "request_id_field"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]}")
    header = body.get("request_id_header", base.header)
    if not isinstance(header, str) or not HEADER_NAME.fullmatch(header):
        raise ValueError("request_id_header: expected a header name like X-Chaos-Request-Id")
    field = body.get("request_id_field", base.field)
    if field is not None and (not isinstance(field, str) or not FIELD_PATH.fullmatch(field)):
        raise ValueError("request_id_field: expected a dot path like metadata.chaos_id, or null")
    return TapSettings(header, field)


class AttemptRing:
    """The last ``size`` ended attempts of one proxy, the open ones, and connection counts."""

    def __init__(self, size: int = RING) -> None:
        self.records: deque[Attempt] = deque(maxlen=size)
        self.open: dict[int, Attempt] = {}
        self.seq = 0
        self.dropped = 0
        self.connections = {"http": 0, "tls": 0, "unknown": 0}
        self.settings = TapSettings()

    def begin(self, attempt: Attempt) -> None:
        self.open[id(attempt)] = attempt

    def publish(self, attempt: Attempt) -> None:
        self.open.pop(id(attempt), None)
        self.seq += 1
        attempt.seq = self.seq
        records = self.records
        if len(records) == records.maxlen:
            self.dropped += 1
        records.append(attempt)

    def page(self, after: int, limit: int, with_open: bool = False) -> dict[str, Any]:
        records = self.records
        first = self.seq - len(records) + 1  # seq of records[0]
        start = max(0, after - first + 1)
        chosen = list(itertools.islice(records, start, start + max(0, limit)))
        out = [a.to_json() for a in chosen]
        if with_open and start + len(chosen) >= len(records):
            out += [a.to_json() for a in list(self.open.values())]
        last = first + start + len(chosen) - 1 if chosen else after
        return {"tap": True, "attempts": out, "next": last, "dropped": self.dropped,
                "connections": dict(self.connections)}


def tap_off_page(after: int) -> dict[str, Any]:
    return {"tap": False, "attempts": [], "next": after, "dropped": 0,
            "connections": {"http": 0, "tls": 0, "unknown": 0}}
