"""Toxic types: their attributes, validation, and what each does to a stream.

The real server decodes attributes into Go structs without checking them, so a
negative rate or a zero slicer size stalls or crashes it. Here every attribute
is declared once (default, minimum, unit) and checked on create and update, so
that a value that would crash the real server fails at the API with a message
naming the attribute. Everything else the real server accepts is accepted:
``null`` means absent, unknown attributes are ignored, ``stream`` is matched
without regard to case, and a missing bandwidth ``rate`` means unlimited.

A ``Behaviour`` is one toxic applied to one direction of one connection: it
holds the per-connection state (bandwidth credit, bytes sent, timers) while the
``Toxic`` itself stays shared, immutable, and replaced wholesale on update.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chaos.proxy.embedded.errors import bad_request, check_name

log = logging.getLogger("chaos.proxy.embedded")

STREAMS = ("upstream", "downstream")
MAX_VALUE = 10**12  # far beyond any sane duration or size; stops int overflow games

Emit = Callable[[bytes], Awaitable[None]]
CloseFn = Callable[[bool], None]  # close(reset): end the whole connection


@dataclass(frozen=True)
class Attr:
    default: int
    minimum: int  # for a value the request gives; the default may lie below it
    unit: str


SPECS: dict[str, dict[str, Attr]] = {
    "noop": {},
    "latency": {"latency": Attr(0, 0, "ms"), "jitter": Attr(0, 0, "ms")},
    "bandwidth": {"rate": Attr(0, 0, "KB/s")},  # 0: unlimited
    "slow_close": {"delay": Attr(0, 0, "ms")},
    "timeout": {"timeout": Attr(0, 0, "ms")},
    "reset_peer": {"timeout": Attr(0, 0, "ms")},
    "slicer": {
        "average_size": Attr(0, 1, "bytes"),  # absent (0): chunks pass whole
        "size_variation": Attr(0, 0, "bytes"),
        "delay": Attr(0, 0, "µs"),
    },
    "limit_data": {"bytes": Attr(0, 0, "bytes")},
}

_uids = itertools.count(1)


@dataclass(frozen=True)
class Toxic:
    """One toxic as the API shows it; ``uid`` changes on every update so that
    connections re-draw toxicity and restart timers, as the real server does."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]
    uid: int = field(default_factory=lambda: next(_uids))

    @property
    def direction(self) -> str:
        """``stream`` as given may be any case ("Downstream"), as upstream allows."""
        return self.stream.lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string",
             list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _whole(kind: str, key: str, value: object, spec: Attr) -> int:
    where = f"{kind}: attribute {key!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{where} must be a number ({spec.unit}), got {_json_type(value)}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise bad_request(f"{where} must be a whole number of {spec.unit}, got {value}")
    number = int(value)
    if number < spec.minimum:
        raise bad_request(f"{where} must be >= {spec.minimum} ({spec.unit}), got {number}")
    if number > MAX_VALUE:
        raise bad_request(f"{where} is too large ({number} {spec.unit})")
    return number


def validate_attributes(kind: str, raw: object, base: dict[str, int] | None = None
                        ) -> dict[str, int]:
    """Merge ``raw`` over ``base`` (or the defaults) and check what it gives.

    As Go's JSON decoder does, a ``null`` value or an unknown key changes nothing."""
    spec = SPECS[kind]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request(f"{kind}: attributes must be an object, got {_json_type(raw)}")
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        log.warning("%s: ignoring unknown attribute(s) %s", kind, ", ".join(unknown))
    result = dict(base) if base is not None else {k: a.default for k, a in spec.items()}
    for key, value in raw.items():
        if key in spec and value is not None:
            result[key] = _whole(kind, key, value, spec[key])
    if kind == "slicer" and result["size_variation"] and (
            result["size_variation"] >= result["average_size"]):
        raise bad_request("slicer: attribute 'size_variation' must be less than 'average_size'")
    return result


def _toxicity(value: object, default: float = 1.0) -> float:
    """Any number, as upstream takes it (above 1: always; below 0: never); null: ``default``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"toxicity must be a number between 0 and 1, got {_json_type(value)}")
    if not math.isfinite(value):
        raise bad_request(f"toxicity must be a number between 0 and 1, got {value}")
    return float(value)


def parse_toxic(body: object) -> Toxic:
    """Build a new toxic from a create request, with the real server's defaults."""
    if not isinstance(body, dict):
        raise bad_request(f"bad request body: expected a JSON object, got {_json_type(body)}")
    stream = body.get("stream")
    if stream is None:
        stream = "downstream"
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise bad_request("stream was invalid, can be either upstream or downstream")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in SPECS:
        raise bad_request(f"invalid toxic type: {kind!r} (known: {', '.join(sorted(SPECS))})")
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise bad_request(f"toxic name must be a string, got {_json_type(name)}")
    return Toxic(name=check_name(name, "toxic"), type=kind, stream=stream,
                 toxicity=_toxicity(body.get("toxicity")),
                 attributes=validate_attributes(kind, body.get("attributes")))


def update_toxic(old: Toxic, body: object) -> Toxic:
    """Apply an update request: attributes merge, toxicity replaces; as upstream, any
    ``type``, ``stream`` or ``name`` in the body is ignored and ``null`` keeps a value."""
    if not isinstance(body, dict):
        raise bad_request(f"bad request body: expected a JSON object, got {_json_type(body)}")
    toxicity = _toxicity(body.get("toxicity"), old.toxicity)
    attributes = validate_attributes(old.type, body.get("attributes"), old.attributes)
    return replace(old, toxicity=toxicity, attributes=attributes, uid=next(_uids))


# --- behaviour on a live connection -------------------------------------------------------


class Behaviour:
    """A toxic on one connection direction; the default passes data through."""

    def __init__(self, toxic: Toxic, close: CloseFn) -> None:
        self.toxic = toxic
        self.attrs = toxic.attributes
        self.close = close
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The toxic begins to apply (connection opened, or toxic added)."""

    def stop(self) -> None:
        """The toxic stops applying: updated, or its connection closed."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def removed(self) -> None:
        """The toxic was deleted (or /reset) while this connection was open."""
        self.stop()

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        await emit(data)

    async def on_eof(self) -> None:
        """The source closed; return when the close may be passed on."""


class Latency(Behaviour):
    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        # Measured from arrival, not from now: chunks queued behind a slow one
        # are not delayed twice, so throughput survives as it does in the real server.
        jitter = self.attrs["jitter"]
        delay = self.attrs["latency"] + (random.uniform(-jitter, jitter) if jitter else 0)
        wait = arrival + delay / 1000.0 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await emit(data)


class Bandwidth(Behaviour):
    def __init__(self, toxic: Toxic, close: CloseFn) -> None:
        super().__init__(toxic, close)
        self.next_free = 0.0

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        rate = self.attrs["rate"] * 1000  # bytes per second (KB = 1000 bytes, as upstream)
        if rate <= 0:  # unlimited, as upstream means it (its loop then stalls on empty chunks)
            await emit(data)
            return
        step = max(1, rate // 10)  # pieces of 100 ms, so that slow rates still trickle
        view = memoryview(data)
        for offset in range(0, len(data), step):
            piece = view[offset:offset + step]
            now = time.monotonic()
            self.next_free = max(self.next_free, now) + len(piece) / rate
            await asyncio.sleep(self.next_free - now)
            await emit(bytes(piece))


class SlowClose(Behaviour):
    async def on_eof(self) -> None:
        await asyncio.sleep(self.attrs["delay"] / 1000.0)


class Timeout(Behaviour):
    """As upstream's toxics/timeout.go: data is dropped, never delivered later; a
    close from the sending peer passes at once; with ``timeout`` > 0 the connection
    closes after that long without data, the timer restarting on every chunk;
    deleting the toxic closes the connection (upstream's Cleanup)."""

    def start(self) -> None:
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.attrs["timeout"] > 0:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.attrs["timeout"] / 1000.0, self.close, False)

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        self._arm()  # dropped on the ground; the countdown starts again

    def removed(self) -> None:
        self.stop()
        self.close(False)


class ResetPeer(Behaviour):
    """Like the real server, the countdown starts at the first data that meets
    the toxic; that data and everything after it is dropped."""

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        if self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.attrs["timeout"] / 1000.0, self.close, True)


class Slicer(Behaviour):
    def _cuts(self, size: int) -> list[int]:
        average, variation = self.attrs["average_size"], self.attrs["size_variation"]
        cuts: list[int] = []
        stack = [(0, size)]
        while stack:  # split roughly in halves until pieces are near the average
            start, end = stack.pop()
            if end - start - average <= variation:
                cuts.append(end)
                continue
            mid = start + (end - start) // 2 + random.randint(-variation, variation)
            mid = min(max(mid, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
        return cuts

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        if not self.attrs["average_size"]:  # not given: upstream would panic; pass it whole
            await emit(data)
            return
        start = 0
        for end in self._cuts(len(data)):
            await emit(data[start:end])
            start = end
            if self.attrs["delay"]:
                await asyncio.sleep(self.attrs["delay"] / 1e6)


class LimitData(Behaviour):
    def __init__(self, toxic: Toxic, close: CloseFn) -> None:
        super().__init__(toxic, close)
        self.sent = 0

    async def on_data(self, data: bytes, arrival: float, emit: Emit) -> None:
        allowed = max(0, self.attrs["bytes"] - self.sent)
        if allowed:
            piece = data[:allowed]
            await emit(piece)
            self.sent += len(piece)
        if self.sent >= self.attrs["bytes"]:
            self.close(False)


BEHAVIOURS: dict[str, type[Behaviour]] = {
    "noop": Behaviour,
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}
assert set(BEHAVIOURS) == set(SPECS)
