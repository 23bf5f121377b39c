"""Which TCP connection each request used: (local ip, local port, remote ip, remote port).

The evidence shows a failed request with the packets of exactly its connection, so the
locustfile notes the connection's addresses per request. By the time a failure reaches
Locust's request listener the connection is closed, so the addresses are read earlier,
by two small hooks into urllib3 2.x (what requests, hence Locust's HttpUser, runs on):

- ``HTTPConnectionPool._make_request``: a connection reused from the keep-alive pool
  already has a socket; its addresses are read (two syscalls, once per socket: kept on the
  connection) before the request goes out.
- ``urllib3.util.connection.create_connection``: a fresh connection's socket, read right
  after connect(), and also when connect() fails (refused, timed out): the kernel keeps
  the port of the SYN it sent until the socket is closed (a refused socket reports no
  local address any more, only the port; a port of 0 means unknown).

The addresses land in a slot per greenlet (Locust runs each user in its own greenlet, and
a user's requests are sequential); the listener takes them with ``take()``. No locust or
gevent patching happens here, so tests can install the hooks around plain requests.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import urllib3.connectionpool
import urllib3.util.connection as u3conn
from greenlet import getcurrent
from urllib3.exceptions import LocationParseError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

# (local ip or None when the kernel no longer says, local port, remote ip, remote port)
Conn = tuple[str | None, int, str, int]

_SLOT: dict[Any, Conn] = {}
_ORIGINAL: dict[str, Any] = {}
_UNBOUND = ("0.0.0.0", "::", "")


def _addresses(sock: socket.socket, remote: Sequence[Any] | None = None) -> Conn | None:
    """The socket's 4-tuple; remote given when the socket never connected (no peer name)."""
    try:
        local = sock.getsockname()
        peer = remote if remote is not None else sock.getpeername()
    except OSError:
        return None
    if not isinstance(local, tuple) or not local[1]:
        return None  # AF_UNIX, or no port was ever assigned
    return (None if local[0] in _UNBOUND else local[0], int(local[1]), str(peer[0]), int(peer[1]))


def take() -> Conn | None:
    """The connection the current greenlet's last request used (and forget it)."""
    return _SLOT.pop(getcurrent(), None)


def _make_request(self: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
    sock = conn.sock
    if sock is None:  # connects inside; create_connection below fills the slot
        _SLOT.pop(getcurrent(), None)
    else:
        cached = getattr(conn, "_chaos_addresses", None)
        if cached is None or cached[0] is not sock:  # first reuse of this socket: ask once
            cached = (sock, _addresses(sock))
            conn._chaos_addresses = cached
        if cached[1] is not None:
            _SLOT[getcurrent()] = cached[1]
    return _ORIGINAL["make_request"](self, conn, *args, **kwargs)


def create_connection(address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT,
                      source_address: tuple[str, int] | None = None,
                      socket_options: Any = None) -> socket.socket:
    """urllib3.util.connection.create_connection (2.x), noting the socket's addresses."""
    host, port = address
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    err: OSError | None = None
    for af, socktype, proto, _canonname, sa in socket.getaddrinfo(
            host, port, u3conn.allowed_gai_family(), socket.SOCK_STREAM):
        sock = None
        try:
            sock = socket.socket(af, socktype, proto)
            u3conn._set_socket_options(sock, socket_options)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            found = _addresses(sock)
            if found is not None:
                _SLOT[getcurrent()] = found
            return sock
        except OSError as exc:
            err = exc
            if sock is not None:
                found = _addresses(sock, sa)  # the port of the SYN, while the socket is open
                if found is not None:
                    _SLOT[getcurrent()] = found
                sock.close()
    if err is not None:
        try:
            raise err
        finally:
            err = None
    raise OSError("getaddrinfo returns an empty list")


def install() -> None:
    """Put both hooks in place (idempotent)."""
    if _ORIGINAL:
        return
    pool = urllib3.connectionpool.HTTPConnectionPool
    _ORIGINAL["make_request"] = pool._make_request
    _ORIGINAL["create_connection"] = u3conn.create_connection
    pool._make_request = _make_request  # type: ignore[method-assign]
    u3conn.create_connection = create_connection


def uninstall() -> None:
    """Undo install() (for tests that share a process with other requests users)."""
    if not _ORIGINAL:
        return
    urllib3.connectionpool.HTTPConnectionPool._make_request = (  # type: ignore[method-assign]
        _ORIGINAL.pop("make_request"))
    u3conn.create_connection = _ORIGINAL.pop("create_connection")
    _SLOT.clear()

