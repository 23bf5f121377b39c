"""One proxied TCP connection: two pipes, one per direction, and how it ends.

Each pipe has a reader task and a writer task joined by a bounded queue. The
queue is what lets a latency toxic delay every chunk by N ms from its arrival
without cutting throughput to one chunk per N ms: the reader keeps reading
(and timestamping) while the writer sleeps. When no toxic applies and nothing
is queued, the reader writes straight through, so the common case costs one
read and one write per 32 KiB.

Unlike the real server, an EOF is passed on as a half-close, so request
bodies followed by ``shutdown(SHUT_WR)`` still get their answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from typing import TYPE_CHECKING

from chaos.proxy.embedded.toxics import BEHAVIOURS, Behaviour, Toxic

if TYPE_CHECKING:
    from chaos.proxy.embedded.proxy import Proxy

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # bounds memory per direction (2 MiB) and keeps TCP back-pressure
CLOSE_GRACE = 30.0  # a peer that never reads must not keep a closed link alive forever

log = logging.getLogger("chaos.proxy.embedded")

Item = tuple[bytes, float] | None  # (data, arrival) or None for EOF


class Pipe:
    """One direction: ``src`` -> toxics of ``stream`` -> ``dst``."""

    def __init__(self, conn: Connection, stream: str, src: asyncio.StreamReader,
                 dst: asyncio.StreamWriter) -> None:
        self.conn = conn
        self.stream = stream
        self.src = src
        self.dst = dst
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self.draws: dict[int, Behaviour | None] = {}  # toxic uid -> behaviour if drawn
        self.active: list[Behaviour] = []
        self.counted: set[str] = set()
        self.changed = asyncio.Event()
        self.busy = False

    def refresh(self, toxics: list[Toxic]) -> None:
        """Follow the proxy's toxic list; toxicity is drawn once per toxic here."""
        mine = [t for t in toxics if t.stream == self.stream]
        live = {t.uid for t in mine}
        for uid in [u for u in self.draws if u not in live]:
            gone = self.draws.pop(uid)
            if gone is not None:
                gone.stop()
        for toxic in mine:
            if toxic.uid in self.draws:
                continue
            if random.random() < toxic.toxicity:
                behaviour = BEHAVIOURS[toxic.type](toxic, self.conn.close)
                self.draws[toxic.uid] = behaviour
                if toxic.name not in self.counted:
                    self.counted.add(toxic.name)
                    self.conn.proxy.stats.toxic_applied(toxic)
                behaviour.start()
            else:
                self.draws[toxic.uid] = None
        self.active = [b for t in mine if (b := self.draws[t.uid]) is not None]
        self.changed.set()

    def stop(self) -> None:
        for behaviour in self.draws.values():
            if behaviour is not None:
                behaviour.stop()

    async def write(self, data: bytes) -> None:
        self.dst.write(data)
        self.conn.proxy.stats.add_bytes(self.stream, len(data))
        await self.dst.drain()

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.src.read(CHUNK)
                if not data:
                    break
                if not self.active and not self.busy and self.queue.empty():
                    await self.write(data)
                else:
                    await self.queue.put((data, time.monotonic()))
        except Exception as exc:  # OSError mostly; anything else must not strand the peer
            self.conn.failed(self.stream, exc)
            return
        await self.queue.put(None)

    async def write_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    break
                self.busy = True
                await self._hold()
                await self._through(list(self.active), 0, item[0], item[1])
                self.busy = False
            await self._hold()
            for behaviour in list(self.active):
                await behaviour.on_eof()
        except Exception as exc:  # OSError mostly; anything else must not strand the peer
            self.conn.failed(self.stream, exc)
            return
        self.conn.eof(self)

    async def _hold(self) -> None:
        """Keep data (and EOF) back while a blocking toxic (timeout) applies."""
        while any(b.blocks for b in self.active):
            self.changed.clear()
            await self.changed.wait()

    async def _through(self, chain: list[Behaviour], index: int, data: bytes,
                       arrival: float) -> None:
        if index == len(chain):
            await self.write(data)
            return
        await chain[index].on_data(
            data, arrival, lambda out: self._through(chain, index + 1, out, arrival))


class Connection:
    """A client connection and its upstream connection, proxied both ways."""

    def __init__(self, proxy: Proxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.client = client[1]
        self.server = upstream[1]
        peer = self.client.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.up = Pipe(self, "upstream", client[0], upstream[1])
        self.down = Pipe(self, "downstream", upstream[0], client[1])
        self.tasks: list[asyncio.Task[None]] = []
        self.finished: set[str] = set()
        self.closed = False

    def start(self, toxics: list[Toxic]) -> None:
        self.refresh(toxics)
        for pipe in (self.up, self.down):
            self.tasks.append(asyncio.create_task(pipe.read_loop()))
            self.tasks.append(asyncio.create_task(pipe.write_loop()))

    def refresh(self, toxics: list[Toxic]) -> None:
        if not self.closed:
            self.up.refresh(toxics)
            self.down.refresh(toxics)

    def eof(self, pipe: Pipe) -> None:
        """The source of ``pipe`` closed and its toxics let the close through."""
        with contextlib.suppress(OSError, RuntimeError):
            if pipe.dst.can_write_eof():
                pipe.dst.write_eof()
        self.finished.add(pipe.stream)
        if len(self.finished) == 2:
            self.close(False)

    def failed(self, stream: str, exc: BaseException) -> None:
        log.debug("proxy %s: %s %s failed: %r", self.proxy.name, self.peer, stream, exc)
        self.close(False)

    def close(self, reset: bool = False) -> None:
        """End both sides; with ``reset`` the client gets an RST (ECONNRESET)."""
        if self.closed:
            return
        self.closed = True
        self.up.stop()
        self.down.stop()
        for task in self.tasks:
            task.cancel()
        if reset:
            _abort_with_rst(self.client)
        else:
            _close(self.client)
        _close(self.server)
        self.proxy.connection_closed(self, "reset" if reset else "closed")


def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    transport = writer.transport
    asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
