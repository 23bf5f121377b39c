"""One proxy: its listener, its toxics, its live connections and its counters.

Toxic changes are pushed to every open connection at once, so that a fault
injected in the middle of a run hits the connections a gateway already pools,
not only the ones it opens later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from chaos.proxy.embedded.attempts import AttemptRing
from chaos.proxy.embedded.endpoint import Endpoint
from chaos.proxy.embedded.errors import TOXIC_EXISTS, TOXIC_NOT_FOUND, ApiError, bad_request
from chaos.proxy.embedded.link import Connection
from chaos.proxy.embedded.tap import ConnTap, refused
from chaos.proxy.embedded.toxics import Toxic, update_toxic

log = logging.getLogger("chaos.proxy.embedded")

DIAL_TIMEOUT = 5.0
BACKLOG = 1024  # bursts of new connections (a gateway warming its pool) must not see SYN drops
ACCEPT_BATCH = 128  # accepts per readiness callback, so a burst cannot starve the loop
ACCEPT_RETRY = 1.0  # seconds to pause accepting after EMFILE/ENFILE, as asyncio's server does
PEEK_WAIT = 0.02  # after a refused dial, how long to wait for the gateway's head (MSG_PEEK)
PEEK_BYTES = 16 * 1024


def split_hostport(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too) as Go's net.SplitHostPort does."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def format_hostport(sockname: tuple[Any, ...]) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(listen: str) -> socket.socket:
    """Bind one socket (not one per address family) so that port 0 means one port."""
    try:
        host, port = split_hostport(listen)
        infos = socket.getaddrinfo(host or "0.0.0.0", port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError) as exc:
        raise ApiError(f"listen tcp {listen}: {exc}", 500) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ApiError(f"listen tcp {listen}: {exc.strerror or exc}", 500) from exc
    return sock


@dataclass
class ProxyStats:
    """Counters behind the ``/proxies/{name}/stats`` extension."""

    total: int = 0
    dial_failures: int = 0
    bytes: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})
    toxics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_bytes(self, stream: str, count: int) -> None:
        self.bytes[stream] += count

    def toxic_applied(self, toxic: Toxic) -> None:
        entry = self.toxics.setdefault(toxic.name, {"connections": 0})
        entry.update(type=toxic.type, stream=toxic.stream)
        entry["connections"] += 1


class Proxy:
    """A listener forwarding each accepted connection to ``upstream``."""

    def __init__(self, name: str, listen: str, upstream: str,
                 dial_timeout: float = DIAL_TIMEOUT, tap: bool = False) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.dial_timeout = dial_timeout
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.http_counts: dict[str, int] = {}  # requests each HTTP toxic matched, since created
        self.connections: set[Connection] = set()
        self.stats = ProxyStats()
        self.attempts: AttemptRing | None = AttemptRing() if tap else None  # None: tap off
        self._listener: socket.socket | None = None
        self._dialling: set[asyncio.Task[None]] = set()

    # --- JSON -------------------------------------------------------------------------------
    def toxic_list(self) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in creation order (as upstream)."""
        return sorted(self.toxics.values(), key=lambda t: t.direction != "upstream")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxic_list()]}

    def stats_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "connections": {"total": self.stats.total, "active": len(self.connections),
                            "dial_failures": self.stats.dial_failures},
            "bytes": dict(self.stats.bytes),
            "toxics": {k: dict(v) for k, v in self.stats.toxics.items()},
        }

    # --- listener ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            return
        sock = _bind(self.listen)
        try:
            sock.listen(BACKLOG)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._on_acceptable, sock)
        except OSError as exc:
            sock.close()
            raise ApiError(f"listen tcp {self.listen}: {exc.strerror or exc}", 500) from exc
        self._listener = sock
        self.listen = format_hostport(sock.getsockname())
        self.enabled = True
        log.info("proxy %s: listening on %s -> %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Close the listener and every connection, as disabling does upstream."""
        if not self.enabled:
            return
        self.enabled = False
        listener, self._listener = self._listener, None
        if listener is not None:
            asyncio.get_running_loop().remove_reader(listener.fileno())
            listener.close()
        for task in list(self._dialling):
            task.cancel()
        for conn in list(self.connections):
            conn.toxic_close(False)
        log.info("proxy %s: stopped (was %s)", self.name, self.listen)

    def _on_acceptable(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: back off rather than spin
                log.warning("proxy %s: accept failed: %s; retrying in %.0f s", self.name, exc,
                            ACCEPT_RETRY)
                loop = asyncio.get_running_loop()
                loop.remove_reader(listener.fileno())
                loop.call_later(ACCEPT_RETRY, self._resume_accepting, listener)
                return
            task = asyncio.create_task(self._accept(sock, listener, time.time()))
            self._dialling.add(task)
            task.add_done_callback(self._dialling.discard)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener is self._listener:  # not closed (or replaced) in the meantime
            asyncio.get_running_loop().add_reader(listener.fileno(), self._on_acceptable, listener)

    async def _accept(self, sock: socket.socket, listener: socket.socket,
                      accepted: float) -> None:
        try:
            client = Endpoint(sock)
        except OSError:
            sock.close()
            return
        peer = client.peername()
        self.stats.total += 1
        number = self.stats.total
        try:
            host, port = split_hostport(self.upstream)
            upstream = await asyncio.wait_for(  # resolved at every dial: containers move
                _dial(host, port), self.dial_timeout)
        except (OSError, ValueError) as exc:  # TimeoutError is an OSError
            failed = time.time()  # the refused attempt's end (the peek below may wait)
            self.stats.dial_failures += 1
            log.warning("proxy %s: client %s: cannot reach upstream %s: %s", self.name, peer,
                        self.upstream, str(exc) or "dial timed out")
            try:
                if self.attempts is not None:
                    refused(f"{self.name}#{number}", self.attempts, await _peek(client), failed,
                            accepted)
            finally:  # also when disabled during the peek: the socket must not leak
                client.close()
            return
        except asyncio.CancelledError:  # disabled while dialling
            client.close()
            raise
        if listener is not self._listener:  # disabled (or moved) while dialling
            client.close()
            upstream.close()
            return
        tap = None if self.attempts is None else ConnTap(f"{self.name}#{number}", self.attempts)
        conn = Connection(self, client, upstream, tap)
        self.connections.add(conn)
        log.info("proxy %s: accepted %s -> %s", self.name, peer, self.upstream)
        conn.start(self.toxic_list())

    def connection_closed(self, conn: Connection, how: str) -> None:
        self.connections.discard(conn)
        log.info("proxy %s: connection %s %s", self.name, conn.peer, how)

    # --- toxics -----------------------------------------------------------------------------
    def _push(self) -> None:
        toxics = self.toxic_list()
        for conn in list(self.connections):
            conn.refresh(toxics)

    def get_toxic(self, name: str) -> Toxic:
        try:
            return self.toxics[name]
        except KeyError:
            raise ApiError(TOXIC_NOT_FOUND, 404) from None

    def add_toxic(self, toxic: Toxic) -> Toxic:
        if toxic.name in self.toxics:
            raise ApiError(TOXIC_EXISTS, 409)
        self.toxics[toxic.name] = toxic
        self.http_counts.pop(toxic.name, None)
        self._push()
        log.info("proxy %s: toxic %s added %s", self.name, toxic.name, toxic.to_json())
        return toxic

    def update_toxic(self, name: str, body: object) -> Toxic:
        toxic = update_toxic(self.get_toxic(name), body)
        self.toxics[name] = toxic
        self._push()
        log.info("proxy %s: toxic %s updated %s", self.name, name, toxic.to_json())
        return toxic

    def remove_toxic(self, name: str) -> None:
        self.get_toxic(name)
        del self.toxics[name]
        self._push()
        log.info("proxy %s: toxic %s removed", self.name, name)

    def reset_toxics(self) -> None:
        if self.toxics:
            self.toxics.clear()
            self._push()
            log.info("proxy %s: all toxics removed", self.name)


async def _peek(client: Endpoint) -> bytes:
    """What the gateway already sent, left unread (MSG_PEEK); waits a moment if nothing yet."""
    for attempt in range(2):
        try:
            return client.sock.recv(PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            if attempt:
                return b""
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(client.readable(), PEEK_WAIT)
        except OSError:
            return b""
    return b""


async def _dial(host: str, port: int) -> Endpoint:
    """Connect to the first address of ``host`` that answers, as open_connection does."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            return Endpoint(sock)
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


def check_upstream(upstream: object) -> str:
    if not isinstance(upstream, str) or not upstream:
        raise bad_request("missing required field: upstream")
    try:
        split_hostport(upstream)
    except ValueError as exc:
        raise bad_request(f"upstream: {exc}") from None
    return upstream
