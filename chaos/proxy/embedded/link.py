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

With the HTTP tap on (``chaos/proxy/embedded/tap.py``), each pipe feeds its
reader every byte it passes and splices only as many bytes as the reader calls
opaque (body bytes it has no use for), so framing always passes through
``recv`` and the parser while bodies keep the zero-copy path. The request
side is fed as it is read (when the gateway sent it); the response side as it
is written to the gateway, after the toxics (``at_write``), so an attempt's
first byte, end and how it ended are what the gateway got, not what the
upstream sent. The tap only watches: the bytes and their order are the same
with it off.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import time
from typing import TYPE_CHECKING

from chaos.proxy.embedded.endpoint import SPLICE, Endpoint, SplicePipe
from chaos.proxy.embedded.http1 import INF
from chaos.proxy.embedded.http_spec import HTTP_TYPES
from chaos.proxy.embedded.http_toxics import Gate, can_attach, http_toxics
from chaos.proxy.embedded.toxics import BEHAVIOURS, Behaviour, Toxic

if TYPE_CHECKING:
    from chaos.proxy.embedded.http1 import Reader
    from chaos.proxy.embedded.proxy import Proxy
    from chaos.proxy.embedded.tap import ConnTap

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # bounds memory per direction (4 MiB) and keeps TCP back-pressure
BULK_BYTES = 1 << 20  # or a full chunk: then a direction moves its bytes with splice
SPLICE_CHUNK = 1 << 20  # at most this much per splice; the pipe's size bounds it further

log = logging.getLogger("chaos.proxy.embedded")

Item = tuple[bytes, float] | None  # (data, arrival) or None for EOF


class Pipe:
    """One direction: ``src`` -> toxics of ``stream`` -> ``dst``."""

    def __init__(self, conn: Connection, stream: str, src: Endpoint, dst: Endpoint,
                 tap: Reader | None = None, at_write: bool = False) -> None:
        self.conn = conn
        self.tap = tap
        self.fed_on_write = tap if at_write else None  # fed as delivered, not as read
        self.fed_on_read = None if at_write else tap
        self.stream = stream
        self.response = stream == "downstream"
        self.src = src
        self.dst = dst
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self.draws: dict[int, tuple[Toxic, Behaviour | None]] = {}  # uid -> behaviour if drawn
        self.active: list[Behaviour] = []
        self.counted: set[str] = set()
        self.busy = False
        self.bulk = False  # a read filled a whole chunk, or 1 MiB passed: worth a kernel pipe
        self.copied = 0
        self.held = 0  # bytes read into the toxic chain and not (yet) written out of it
        self.pipe: SplicePipe | None = None
        self.seen = False  # a byte was read in this direction

    def refresh(self, toxics: list[Toxic]) -> None:
        """Follow the proxy's toxic list; toxicity is drawn once per toxic here."""
        # HTTP- and stream-aware toxics act on exchanges: the connection's Gate has them.
        mine = [t for t in toxics if t.direction == self.stream and t.type not in HTTP_TYPES]
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
                self.conn.toxic_close(False)
        if self.conn.closed:
            return
        for toxic in mine:
            if toxic.uid in self.draws:
                continue
            behaviour = None
            if random.random() < toxic.toxicity:
                behaviour = BEHAVIOURS[toxic.type](toxic, self.conn.toxic_close)
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
        if self.fed_on_write is not None:
            self.fed_on_write.feed(data, time.time())

    async def read_loop(self) -> None:
        drained = False
        tap = self.tap
        try:
            while True:
                if not self.active and (self.busy or not self.queue.empty()):
                    # The toxics are gone but chunks they saw are still queued: let them
                    # out first, or a steady stream would keep the queue full forever.
                    await self.queue.join()
                    continue
                gate = self.conn.gate
                if self.pipe is not None and self._direct():
                    if tap is None and gate is None:
                        moved = await self._splice_chunk(SPLICE_CHUNK)
                    elif (opaque := min(tap.opaque() if tap is not None else INF,
                                        gate.opaque(self.response) if gate is not None
                                        else INF)) > 0:
                        moved = await self._splice_chunk(min(opaque, SPLICE_CHUNK))
                        if moved > 0:
                            if tap is not None:
                                tap.skip(moved, time.time())
                            if gate is not None:
                                await gate.skipped(self.response, moved)
                            drained = False
                    else:
                        moved = -2  # framing next: through recv and the parser
                    if moved == 0:
                        break
                    if moved != -2:
                        continue  # moved, or -1: a toxic came while waiting; decide again
                if self.conn.want_gate:
                    # Between messages (tap idle) or never; the response side too, since
                    # the request side is then blocked in recv until the next request (a
                    # toxic added while a chunked stream was in flight would never apply).
                    self.conn.attach_gate()
                data = await self.src.recv(CHUNK, drained)
                if self.fed_on_read is not None:
                    self.fed_on_read.feed(data, time.time())
                if not data:
                    break
                drained = len(data) < CHUNK
                self.seen = True
                gate = self.conn.gate
                if gate is None:
                    await self.forward(data)
                elif self.response:
                    await gate.response_bytes(data, self.forward)
                else:
                    await gate.request_bytes(data, self.forward)
        except Exception as exc:  # OSError mostly; anything else must not strand the peer
            self.conn.failed(self.stream, exc)
            return
        self.conn.source_eof(self)
        await self.queue.put(None)

    async def forward(self, data: bytes) -> None:
        """Pass ``data`` on: straight out when nothing is in the way, else via the toxics."""
        if self._direct():
            self.copied += len(data)
            if not self.bulk and (len(data) == CHUNK or self.copied >= BULK_BYTES):
                self._go_bulk()
            await self.write(data)
        else:
            self.held += len(data)
            await self.queue.put((data, time.monotonic()))

    def _go_bulk(self) -> None:
        self.bulk = True
        if SPLICE and not self.conn.closed:
            try:
                self.pipe = SplicePipe()
            except OSError as exc:  # out of descriptors: stay on the copying path
                log.debug("proxy %s: no splice pipe: %r", self.conn.proxy.name, exc)

    async def _splice_chunk(self, size: int) -> int:
        """Move one chunk src -> pipe -> dst; 0 at EOF, -1 if it should not splice now."""
        pipe = self.pipe
        assert pipe is not None
        while True:
            try:
                moved = pipe.fill(self.src, size)
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
                self.src.error = None
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
            self.held -= len(data)
            await self.write(data)
            return
        await chain[index].on_data(
            data, arrival, lambda out: self._through(chain, index + 1, out, arrival))


class Connection:
    """A client connection and its upstream connection, proxied both ways."""

    def __init__(self, proxy: Proxy, client: Endpoint, upstream: Endpoint,
                 tap: ConnTap | None = None) -> None:
        self.proxy = proxy
        self.client = client
        self.server = upstream
        self.peer = client.peername()
        self.tap = tap
        self.up = Pipe(self, "upstream", client, upstream, tap.up if tap else None)
        self.down = Pipe(self, "downstream", upstream, client, tap.down if tap else None,
                         at_write=True)
        self.tasks: list[asyncio.Task[None]] = []
        self.finished: set[str] = set()
        self.closed = False
        self.gate: Gate | None = None
        self.want_gate = False
        self.toxics: list[Toxic] = []

    def start(self, toxics: list[Toxic]) -> None:
        self.refresh(toxics)
        for pipe in (self.up, self.down):
            self.tasks.append(asyncio.create_task(pipe.read_loop()))
            self.tasks.append(asyncio.create_task(pipe.write_loop()))

    def refresh(self, toxics: list[Toxic]) -> None:
        for pipe in (self.up, self.down):
            if not self.closed:
                pipe.refresh(toxics)
        self.toxics = toxics
        if self.gate is not None:
            self.gate.toxics = http_toxics(toxics)
        elif http_toxics(toxics):
            self.want_gate = True
            if can_attach(self):
                self.attach_gate()

    def attach_gate(self) -> None:
        """HTTP toxics apply from here on: only ever at a point between messages."""
        if self.gate is None and can_attach(self):
            self.want_gate = False
            self.gate = Gate(self, self.toxics, self.proxy.http_counts)

    def eof(self, pipe: Pipe) -> None:
        """The source of ``pipe`` closed and its toxics let the close through (not an
        ``sse_stall``ed response's: the end of a close-delimited body never comes either)."""
        if pipe is not self.down or self.gate is None or not self.gate.stalled:
            pipe.dst.shutdown_write()
        if self.tap is not None and pipe is self.down:  # the gateway got the upstream's FIN
            self.tap.upstream_eof(time.time(), cut=pipe.held > 0)
        self.finished.add(pipe.stream)
        if len(self.finished) == 2:
            self.close(False)

    def source_eof(self, pipe: Pipe) -> None:
        """The source of ``pipe`` sent its FIN (read at once, whatever the toxics do): the
        gateway's is when it gave up; the upstream's counts once delivered (``eof``)."""
        if self.tap is not None and pipe is self.up:
            self.tap.gateway_eof(time.time())

    def failed(self, stream: str, exc: BaseException) -> None:
        log.debug("proxy %s: %s %s failed: %r", self.proxy.name, self.peer, stream, exc)
        if self.tap is not None:
            if self.client.error is not None:
                self.tap.set_cause("gateway_rst", time.time())
            elif self.server.error is not None:
                self.tap.set_cause("upstream_reset", time.time())
        self.close(False)

    def toxic_close(self, reset: bool = False) -> None:
        """A toxic (or the proxy being disabled) cuts the connection."""
        if self.tap is not None and not self.closed:
            self.tap.set_cause("toxic", time.time())
        self.close(reset)

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
        if self.tap is not None:
            self.tap.finish(time.time())
        self.proxy.connection_closed(self, "reset" if reset else "closed")

