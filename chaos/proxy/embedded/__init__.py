"""The project's own Toxiproxy-compatible server (asyncio + aiohttp).

It exists because the Go server cannot be downloaded or built everywhere the
harness runs. It imports only the standard library and aiohttp, and nothing
else from ``chaos``, so that a container image can ship this package alone.

Start it with ``python -m chaos.proxy.embedded`` or, in-process, with
``ServerThread().start()``.
"""

from __future__ import annotations

from chaos.proxy.embedded.runner import ServerThread, serve
from chaos.proxy.embedded.server import VERSION, create_app

__all__ = ["VERSION", "ServerThread", "create_app", "serve"]
