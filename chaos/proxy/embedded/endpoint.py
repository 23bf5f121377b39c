"""One end of a proxied connection: a raw non-blocking socket and its waits.

The proxy owns its sockets instead of handing them to asyncio transports, so
that the same file descriptor can be read with ``recv`` (toxic path) or moved
with ``splice`` (zero-copy path) from one chunk to the next. A transport
would own the descriptor and read it behind our back, so switching paths on a
live connection would need pausing, draining and resuming it; here there is
nothing to switch but which call the pipe makes next.

Readiness is waited for with ``loop.add_reader``/``add_writer``. A
registration is kept while a direction keeps waiting (bulk transfers wait on
every chunk) and dropped the first time it fires with nobody waiting, so an
idle socket costs nothing and a busy one no ``epoll_ctl`` per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct

SPLICE = hasattr(os, "splice") and hasattr(os, "SPLICE_F_NONBLOCK")  # Linux, Python 3.10+
SPLICE_FLAGS = (os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE) if SPLICE else 0
PIPE_SIZE = 512 * 1024  # asked for; above the per-user pipe limits the kernel gives less
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_splice = getattr(os, "splice", None)  # looked up per call, so that tests can count calls


class Endpoint:
    """A connected non-blocking socket; closing it makes every later call fail."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._reading = False  # registered with add_reader
        self._writing = False
        self.error: OSError | None = None  # the socket's own failure (reset, broken pipe)

    def peername(self) -> str:
        try:
            peer = self.sock.getpeername()
        except OSError:
            return "?"
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # --- readiness --------------------------------------------------------------------------
    async def readable(self) -> None:
        if self.closed:
            raise ConnectionAbortedError(errno.ECONNABORTED, "connection closed")
        waiter = self._read_waiter = self.loop.create_future()
        if not self._reading:
            self.loop.add_reader(self.fd, self._on_readable)
            self._reading = True
        try:
            await waiter
        finally:
            self._read_waiter = None

    async def writable(self) -> None:
        if self.closed:
            raise ConnectionAbortedError(errno.ECONNABORTED, "connection closed")
        waiter = self._write_waiter = self.loop.create_future()
        if not self._writing:
            self.loop.add_writer(self.fd, self._on_writable)
            self._writing = True
        try:
            await waiter
        finally:
            self._write_waiter = None

    def _on_readable(self) -> None:
        waiter = self._read_waiter
        if waiter is None:  # nobody waits: stop polling until somebody does
            self.loop.remove_reader(self.fd)
            self._reading = False
        elif not waiter.done():
            waiter.set_result(None)

    def _on_writable(self) -> None:
        waiter = self._write_waiter
        if waiter is None:
            self.loop.remove_writer(self.fd)
            self._writing = False
        elif not waiter.done():
            waiter.set_result(None)

    # --- data -------------------------------------------------------------------------------
    async def recv(self, size: int, wait_first: bool = False) -> bytes:
        """``wait_first``: the last read drained the socket, so skip a certain EAGAIN."""
        if wait_first:
            await self.readable()
        while True:
            try:
                return self.sock.recv(size)
            except (BlockingIOError, InterruptedError):
                await self.readable()
            except OSError as exc:
                self.error = exc
                raise

    async def send(self, data: bytes | memoryview) -> None:
        """Return once every byte is in the kernel's send buffer."""
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                await self.writable()
                continue
            except OSError as exc:
                self.error = exc
                raise
            view = view[sent:]

    def shutdown_write(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def close(self, reset: bool = False) -> None:
        """Close; with ``reset`` an RST instead of a FIN (SO_LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        # Unregister before the descriptor is closed: its number may be reused at once.
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False
        if self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False
        for waiter in (self._read_waiter, self._write_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionAbortedError(errno.ECONNABORTED, "connection closed"))
        if reset:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class SplicePipe:
    """A kernel pipe to move bytes socket -> pipe -> socket without copying them
    through Python. It is empty between chunks, which is what makes switching to
    the toxic path exact: nothing read is ever left behind in it."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # EPERM above the per-user limit: keep the default
            fcntl.fcntl(self.write_fd, F_SETPIPE_SZ, PIPE_SIZE)
        self.closed = False

    def fill(self, src: Endpoint, size: int) -> int:
        """Bytes moved from ``src`` into the pipe, 0 at EOF; BlockingIOError if none yet."""
        if src.closed or self.closed:  # its descriptor number may belong to another socket now
            raise ConnectionAbortedError(errno.ECONNABORTED, "connection closed")
        try:
            return _splice(src.fd, self.write_fd, size, flags=SPLICE_FLAGS)  # type: ignore[misc]
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:
            src.error = exc
            raise

    def drain(self, dst: Endpoint, size: int) -> int:
        """Bytes moved from the pipe into ``dst``; BlockingIOError if it is full."""
        if dst.closed or self.closed:
            raise ConnectionAbortedError(errno.ECONNABORTED, "connection closed")
        try:
            return _splice(self.read_fd, dst.fd, size, flags=SPLICE_FLAGS)  # type: ignore[misc]
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:
            dst.error = exc
            raise

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.read_fd)
            os.close(self.write_fd)
