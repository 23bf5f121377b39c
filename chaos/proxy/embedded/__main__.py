"""``python -m chaos.proxy.embedded``: a drop-in for ``toxiproxy-server``.

Used where the Go server is not available (no registry, no Go toolchain), on
the host or inside the project's container image with ``--host 0.0.0.0``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from chaos.proxy.embedded.proxy import DIAL_TIMEOUT
from chaos.proxy.embedded.runner import load_config, serve
from chaos.proxy.embedded.server import VERSION

LOOPS = ("auto", "uvloop", "asyncio")


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """``--loop``, shared with ``chaos toxiproxy serve``."""
    parser.add_argument("--loop", choices=LOOPS, default="auto",
                        help="event loop: uvloop (fails if not installed), asyncio, or auto "
                        "(uvloop when importable; the default). The image runs uvloop.")


def add_tap_option(parser: argparse.ArgumentParser) -> None:
    """``--no-tap``, shared with ``chaos toxiproxy serve``."""
    parser.add_argument("--no-tap", dest="tap", action="store_false", default=None,
                        help="do not tap HTTP/1.1 on proxied connections (no attempt records "
                        "at /proxies/{name}/attempts); same as env CHAOS_PROXY_TAP=0")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.proxy.embedded",
        description="Toxiproxy-compatible TCP fault proxy with an HTTP control API.")
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474, help="API port (default 8474; 0 picks)")
    parser.add_argument("--config", help="JSON list of proxies to create at start")
    parser.add_argument("--dial-timeout", type=float, default=DIAL_TIMEOUT,
                        help="seconds to wait for an upstream connect (default 5)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    add_loop_option(parser)
    add_tap_option(parser)
    parser.add_argument("--no-uvloop", dest="loop", action="store_const", const="asyncio",
                        help="same as --loop asyncio")
    parser.add_argument("--version", action="version", version=VERSION)
    return parser


async def _main(host: str, port: int, config: Any, dial_timeout: float,
                tap: bool | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(host, port, stop, config, dial_timeout=dial_timeout, tap=tap)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``--loop`` (None: the standard loop); ImportError for
    ``uvloop`` when it is not installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("chaos.proxy.embedded")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    config = None
    if args.config:
        try:
            config = load_config(args.config)
        except (OSError, ValueError) as exc:
            log.error("cannot read config %s: %s", args.config, exc)
            return 2
    try:
        factory = loop_factory(args.loop)
    except ImportError:
        log.error("--loop uvloop: uvloop is not installed (pip install uvloop, or --loop auto)")
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_main(args.host, args.port, config, args.dial_timeout, args.tap))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", args.host, args.port, exc)
        return 3
    except Exception as exc:  # e.g. a config proxy that cannot listen
        log.error("stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
