"""One proxied TCP connection: two pipes, one per direction, and how it ends.

Each pipe has a reader task and a writer task joined by a bounded queue. The
queue is what lets a latency toxic delay every chunk by N ms from its arrival
without cutting throughput to one chunk per N ms: the reader keeps reading
(and timestamping) while the writer sleeps.

When no toxic applies and nothing is queued, the reader skips the queue. A
direction that has shown it carries bulk data (a read filled a whole chunk)
then moves its bytes with ``splice`` through a kernel pipe, never copying them
into Python; otherwise it writes each read straight through. The choice is
made again before every chunk, and a splice chunk is always passed on whole
before the next decision, so a toxic added mid-stream applies from the next
chunk on, with no byte lost, repeated or reordered; once it is removed and the
queue has drained, the zero-copy path resumes.

Unlike the real server, an EOF is passed on as a half-close, so request
bodies followed by ``shutdown(SHUT_WR)`` still get their answer.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import time
from typing import TYPE_CHECKING

from chaos.proxy.embedded.endpoint import SPLICE, Endpoint, SplicePipe
from chaos.proxy.embedded.toxics import BEHAVIOURS, Behaviour, Toxic

if TYPE_CHECKING:
    from chaos.proxy.embedded.proxy import Proxy

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # bounds memory per direction (4 MiB) and keeps TCP back-pressure
BULK_BYTES = 1 << 20  # or a full chunk: then a direction moves its bytes with splice
SPLICE_CHUNK = 1 << 20  # at most this much per splice; the pipe's size bounds it further

log = logging.getLogger("chaos.proxy.embedded")

Item = tuple[bytes, float] | None  # (data, arrival) or None for EOF


class Pipe:
    """One direction: ``src`` -> toxics of ``stream`` -> ``dst``."""

    def __init__(self, conn: Connection, stream: str, src: Endpoint, dst: Endpoint) -> None:
        self.conn = conn
        self.stream = stream
        self.src = src
        self.dst = dst
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self.draws: dict[int, tuple[Toxic, Behaviour | None]] = {}  # uid -> behaviour if drawn
        self.active: list[Behaviour] = []
        self.counted: set[str] = set()
        self.busy = False
        self.bulk = False  # a read filled a whole chunk, or 1 MiB passed: worth a kernel pipe
        self.copied = 0
        self.pipe: SplicePipe | None = None

    def refresh(self, toxics: list[Toxic]) -> None:
        """Follow the proxy's toxic list; toxicity is drawn once per toxic here."""
        mine = [t for t in toxics if t.direction == self.stream]
        live = {t.uid for t in mine}
        names = {t.name for t in mine}
        for uid in [u for u in self.draws if u not in live]:
            toxic, gone = self.draws.pop(uid)
            if toxic.name in names:  # updated: the new version is drawn below
                if gone is not None:
                    gone.stop()
            elif gone is not None:
                gone.removed()
            elif toxic.type == "timeout":  # upstream's Cleanup closes even undrawn links
                self.conn.close(False)
        if self.conn.closed:
            return
        for toxic in mine:
            if toxic.uid in self.draws:
                continue
            behaviour = None
            if random.random() < toxic.toxicity:
                behaviour = BEHAVIOURS[toxic.type](toxic, self.conn.close)
                if toxic.name not in self.counted:
                    self.counted.add(toxic.name)
                    self.conn.proxy.stats.toxic_applied(toxic)
                behaviour.start()
            self.draws[toxic.uid] = (toxic, behaviour)
        self.active = [b for t in mine if (b := self.draws[t.uid][1]) is not None]

    def stop(self) -> None:
        for _toxic, behaviour in self.draws.values():
            if behaviour is not None:
                behaviour.stop()
        if self.pipe is not None:
            self.pipe.close()

    def _direct(self) -> bool:
        """No toxic applies and nothing is queued or being written: skip the queue."""
        return not self.active and not self.busy and self.queue.empty()

    async def write(self, data: bytes) -> None:
        self.conn.proxy.stats.add_bytes(self.stream, len(data))
        await self.dst.send(data)

    async def read_loop(self) -> None:
        drained = False
        try:
            while True:
                if not self.active and (self.busy or not self.queue.empty()):
                    # The toxics are gone but chunks they saw are still queued: let them
                    # out first, or a steady stream would keep the queue full forever.
                    await self.queue.join()
                    continue
                if self.pipe is not None and self._direct():
                    moved = await self._splice_chunk()
                    if moved == 0:
                        break
                    continue  # moved, or -1: a toxic came while waiting; decide again
                data = await self.src.recv(CHUNK, drained)
                if not data:
                    break
                drained = len(data) < CHUNK
                if self._direct():
                    self.copied += len(data)
                    if not self.bulk and (len(data) == CHUNK or self.copied >= BULK_BYTES):
                        self._go_bulk()
                    await self.write(data)
                else:
                    await self.queue.put((data, time.monotonic()))
        except Exception as exc:  # OSError mostly; anything else must not strand the peer
            self.conn.failed(self.stream, exc)
            return
        await self.queue.put(None)

    def _go_bulk(self) -> None:
        self.bulk = True
        if SPLICE and not self.conn.closed:
            try:
                self.pipe = SplicePipe()
            except OSError as exc:  # out of descriptors: stay on the copying path
                log.debug("proxy %s: no splice pipe: %r", self.conn.proxy.name, exc)

    async def _splice_chunk(self) -> int:
        """Move one chunk src -> pipe -> dst; 0 at EOF, -1 if it should not splice now."""
        pipe = self.pipe
        assert pipe is not None
        while True:
            try:
                moved = pipe.fill(self.src, SPLICE_CHUNK)
                break
            except (BlockingIOError, InterruptedError):
                await self.src.readable()
                if not self._direct():  # a toxic arrived while the socket was quiet
                    return -1
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                pipe.close()  # this socket type cannot splice: copy instead
                self.pipe = None
                return -1
        left = moved
        while left:  # the whole chunk goes out before anything else is decided
            try:
                sent = pipe.drain(self.dst, left)
            except (BlockingIOError, InterruptedError):
                await self.dst.writable()
                continue
            left -= sent
            self.conn.proxy.stats.add_bytes(self.stream, sent)
        return moved

    async def write_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    break
                self.busy = True
                await self._through(list(self.active), 0, item[0], item[1])
                self.busy = False
                self.queue.task_done()
            for behaviour in list(self.active):
                await behaviour.on_eof()
        except Exception as exc:  # OSError mostly; anything else must not strand the peer
            self.conn.failed(self.stream, exc)
            return
        self.conn.eof(self)

    async def _through(self, chain: list[Behaviour], index: int, data: bytes,
                       arrival: float) -> None:
        if index == len(chain):
            await self.write(data)
            return
        await chain[index].on_data(
            data, arrival, lambda out: self._through(chain, index + 1, out, arrival))


class Connection:
    """A client connection and its upstream connection, proxied both ways."""

    def __init__(self, proxy: Proxy, client: Endpoint, upstream: Endpoint) -> None:
        self.proxy = proxy
        self.client = client
        self.server = upstream
        self.peer = client.peername()
        self.up = Pipe(self, "upstream", client, upstream)
        self.down = Pipe(self, "downstream", upstream, client)
        self.tasks: list[asyncio.Task[None]] = []
        self.finished: set[str] = set()
        self.closed = False

    def start(self, toxics: list[Toxic]) -> None:
        self.refresh(toxics)
        for pipe in (self.up, self.down):
            self.tasks.append(asyncio.create_task(pipe.read_loop()))
            self.tasks.append(asyncio.create_task(pipe.write_loop()))

    def refresh(self, toxics: list[Toxic]) -> None:
        for pipe in (self.up, self.down):
            if not self.closed:
                pipe.refresh(toxics)

    def eof(self, pipe: Pipe) -> None:
        """The source of ``pipe`` closed and its toxics let the close through."""
        pipe.dst.shutdown_write()
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
        self.client.close(reset)
        self.server.close()
        self.proxy.connection_closed(self, "reset" if reset else "closed")

