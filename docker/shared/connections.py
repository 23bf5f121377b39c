"""The reference services' client connections (issue 22): a cap on requests per keep-alive
connection, and the open connections a reload may drop.

- KEEPALIVE_MAX_REQUESTS (0: no cap): after that many requests on one connection the
  answer carries `Connection: close` and the connection ends after it, as nginx's
  `keepalive_requests` (1000 by default) does: the client opens (and handshakes) a new one
  for its next request. Connections then turn over while traffic flows, so a certificate
  swapped on a reload meets new handshakes.
- `Tracker` remembers each open connection's transport (from the requests it carried),
  so a reload that drops them (TLS_RELOAD=drop, tls_serving) can reset every one.

Copied beside app.py into each reference image, like tls_serving.py.
"""

from __future__ import annotations

import os
import socket
import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tracker:
    """The transports of the connections that carried requests, with how many each did."""

    def __init__(self) -> None:
        self._open: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def count(self, transport: Any) -> int:
        """One more request on this connection: how many it has carried."""
        self._open[transport] = self._open.get(transport, 0) + 1
        return self._open[transport]

    def reset_all(self) -> int:
        """Abort every open connection with a TCP RST (SO_LINGER 0); how many there were."""
        dropped = 0
        for transport in list(self._open):
            if transport.is_closing():
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            dropped += 1
        return dropped


def max_requests() -> int:
    return max(int(os.environ.get("KEEPALIVE_MAX_REQUESTS", "0") or 0), 0)


def middleware(tracker: Tracker, cap: int) -> Callable[[web.Request, Handler],
                                                        Awaitable[web.StreamResponse]]:
    """Count each connection's requests (closing it after `cap`, 0: never) and track it."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        count = tracker.count(transport) if transport is not None else 0
        response = await handler(request)
        if cap and count >= cap and not response.prepared:
            response.force_close()  # Connection: close, and the connection ends after it
        return response

    return limit
