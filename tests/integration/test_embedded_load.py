"""1,000 concurrent connections through one embedded proxy, all complete, no errors.

All clients are connected at the same time (a barrier holds them) before any
sends, so the proxy really holds 1,000 client and 1,000 upstream connections
at once; each then echoes 4 KiB through the proxy and closes. The server's
counters must show 1,000 connections, no dial failures, none left open.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Iterator

import pytest
import requests

from chaos.proxy.embedded import ServerThread

LOOPBACK = "127.0.0.1"
CLIENTS = 1000
PAYLOAD = os.urandom(4096)


@pytest.fixture
def enough_files() -> Iterator[None]:
    """Client, accepted, upstream and echo sockets all live in this process: ~4 per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CLIENTS * 4 + 512
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _client(port: int, everyone_connected: asyncio.Barrier) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        await everyone_connected.wait()
        writer.write(PAYLOAD)
        await writer.drain()
        got = await reader.readexactly(len(PAYLOAD))
        assert got == PAYLOAD
        writer.write_eof()
        assert await reader.read() == b""  # the proxy passes the close on both ways
    finally:
        writer.close()
        await writer.wait_closed()


async def _run(api: str) -> list[BaseException | None]:
    echo = await asyncio.start_server(_echo, LOOPBACK, 0, backlog=2048)
    upstream = f"{LOOPBACK}:{echo.sockets[0].getsockname()[1]}"
    body = {"name": "load", "listen": f"{LOOPBACK}:0", "upstream": upstream}
    created = await asyncio.to_thread(requests.post, f"{api}/proxies", json=body, timeout=5)
    assert created.status_code == 201, created.text
    port = int(created.json()["listen"].rsplit(":", 1)[1])
    barrier = asyncio.Barrier(CLIENTS)
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(_client(port, barrier) for _ in range(CLIENTS)), return_exceptions=True), 15)
    finally:
        echo.close()
    return list(results)


def test_thousand_concurrent_connections(enough_files: None) -> None:
    with ServerThread(LOOPBACK, 0) as server:
        started = time.monotonic()
        results = asyncio.run(_run(server.url))
        errors = [r for r in results if r is not None]
        assert not errors, f"{len(errors)} of {CLIENTS} failed, first: {errors[0]!r}"
        deadline = time.monotonic() + 5
        while True:
            stats = requests.get(f"{server.url}/proxies/load/stats", timeout=5).json()
            if stats["connections"]["active"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert stats["connections"] == {"total": CLIENTS, "active": 0, "dial_failures": 0}
        assert stats["bytes"] == {"upstream": CLIENTS * len(PAYLOAD),
                                  "downstream": CLIENTS * len(PAYLOAD)}
        assert time.monotonic() - started < 20
