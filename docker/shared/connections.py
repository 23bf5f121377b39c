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
from typing import Any

from aiohttp import web


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


def install(app: web.Application, tracker: Tracker, cap: int) -> None:
    """Count each connection's answers as they are prepared (a streamed relay is prepared
    before its handler returns, so a middleware would be too late to add a header) and
    close the connection after the `cap`-th (0: never): Connection: close on that answer."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        transport = request.transport
        if transport is None:
            return
        if tracker.count(transport) >= cap > 0:
            response.force_close()  # the connection ends after this answer...
            # ...and the answer says so: aiohttp set its Connection header before this hook
            # runs, so without this the client would reuse a connection about to close
            response.headers["Connection"] = "close"

    app.on_response_prepare.append(on_prepare)
