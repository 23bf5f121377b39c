"""Running the server: as a coroutine (the CLI) or on a thread (tests, in-process).

The thread form gives the server its own event loop, so that a synchronous
caller (pytest, the harness) can drive it with blocking HTTP clients without
sharing or blocking a loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from chaos.proxy.embedded.collection import Collection
from chaos.proxy.embedded.proxy import DIAL_TIMEOUT
from chaos.proxy.embedded.server import MAX_LINE, READ_TIMEOUT, create_app

log = logging.getLogger("chaos.proxy.embedded")


def loop_name() -> str:
    """What the server runs on, from the running loop itself: "uvloop" or "asyncio"."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def load_config(path: str | Path) -> Any:
    """A proxies file as ``toxiproxy-server -config`` reads it: a JSON list."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


async def serve(host: str, port: int, stop: asyncio.Event, config: Any = None,
                on_ready: Callable[[int], None] | None = None,
                dial_timeout: float = DIAL_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                tap: bool | None = None) -> None:
    """Serve the API on ``host:port`` until ``stop`` is set; port 0 picks one.

    aiohttp's keep-alive timer closes a connection whose next request has not been
    read whole by then, counted from its start or its last response (it does not
    restart on partial data), which makes it the header read timeout. ``tap``: the HTTP
    tap on every proxy (None: on unless ``CHAOS_PROXY_TAP=0``)."""
    collection = Collection(dial_timeout, tap)
    runner = web.AppRunner(create_app(collection, read_timeout), access_log=None,
                           handle_signals=False, keepalive_timeout=read_timeout,
                           max_line_size=MAX_LINE, max_field_size=MAX_LINE)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = runner.addresses[0][1]
        if config is not None:
            proxies = await collection.populate(config)
            log.info("populated %d proxies from config", len(proxies))
        if not collection.tap:
            log.info("HTTP tap off (--no-tap or CHAOS_PROXY_TAP=0): no attempt records")
        log.info("toxiproxy API listening on http://%s:%d (loop %s)", host, bound, loop_name())
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
        log.info("shutting down")
    finally:
        await collection.close_all()
        await runner.cleanup()


class ServerThread:
    """The server on a daemon thread with its own loop; ``url`` once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: Any = None,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
                 read_timeout: float = READ_TIMEOUT, tap: bool | None = None) -> None:
        self.host = host
        self.tap = tap
        self.port = port
        self.config = config
        self.read_timeout = read_timeout
        self.loop_factory = loop_factory  # e.g. uvloop.new_event_loop; None: the standard loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="toxiproxy-embedded", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _started(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.host, self.port, self._stop, self.config, self._started,
                        read_timeout=self.read_timeout, tap=self.tap)

        try:
            with asyncio.Runner(loop_factory=self.loop_factory) as runner:
                runner.run(main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("embedded toxiproxy did not start in time")
        if self._error is not None:
            raise RuntimeError(f"embedded toxiproxy failed to start: {self._error}")
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.ident is not None:  # never started: nothing to join
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
