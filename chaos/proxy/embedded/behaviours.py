"""What each toxic does to a stream: one ``Behaviour`` class per toxic type.

A ``Behaviour`` is one toxic applied to one direction of one connection: it
holds the per-connection state (bandwidth credit, bytes sent, timers) while the
``Toxic`` itself (``chaos/proxy/embedded/toxic_spec.py``) stays shared, immutable,
and replaced wholesale on update.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from chaos.proxy.embedded.toxic_spec import SPECS, Toxic

Emit = Callable[[bytes], Awaitable[None]]
CloseFn = Callable[[bool], None]  # close(reset): end the whole connection


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
