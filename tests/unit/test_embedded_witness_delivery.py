"""The tap's response side is what the gateway got, through the real embedded server on
127.0.0.1: a downstream toxic that delays or cuts a response the upstream finished shows in
the attempt (first byte late, the gateway giving up first, cut by the toxic); a refused
attempt starts when the gateway's connection was accepted, not when the dial gave up."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest
import requests

from chaos.proxy.embedded import proxy as proxy_module
from tests.fixtures.embedded import proxy_fixtures
from tests.fixtures.loopback import LOOPBACK, free_port, toxiproxy_proxy
from tests.unit.test_embedded_witness import (
    RID,
    _attempts,
    _connect,
    _get,
    _recv_exactly,
    _Upstream,
)

HALF = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class _Halves(_Upstream):
    """``/halves``: half a response, the rest 0.3 s later, and the connection kept open."""

    def _answer(self, sock: socket.socket, path: str) -> bool:
        if path == "/halves":
            sock.sendall(HALF)
            time.sleep(0.3)
            sock.sendall(b"67890")
            return True
        return super()._answer(sock, path)


upstream, api, proxy = proxy_fixtures(_Halves, tap=True)


def _toxic(proxy: dict[str, Any], **toxic: Any) -> None:
    requests.post(f"{proxy['api']}/toxics", json=toxic, timeout=5).raise_for_status()


def test_a_gateway_giving_up_behind_a_latency_toxic_is_gateway_fin(
        proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="latency", attributes={"latency": 1000})
    sock = _connect(proxy)
    sock.sendall(_get("/ok"))
    time.sleep(0.3)  # the upstream answered at once; the gateway has seen nothing yet
    sock.close()  # its timeout: a FIN
    [attempt] = _attempts(proxy, timeout=3)["attempts"]
    assert (attempt["ended"], attempt["first_byte"]) == ("gateway_fin", None)
    assert attempt["end"] - attempt["t"] == pytest.approx(0.3, abs=0.1)


def test_first_byte_is_when_the_gateway_got_it(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="latency", attributes={"latency": 300})
    with _connect(proxy) as sock:
        sock.sendall(_get("/ok"))
        assert _recv_exactly(sock, len(OK)) == OK
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["status"]) == ("complete", 200)
    assert attempt["first_byte"] - attempt["t"] >= 0.29
    assert attempt["end"] >= attempt["first_byte"]


def test_a_reset_peer_toxic_mid_response_is_toxic(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        sock.sendall(_get("/halves"))
        assert _recv_exactly(sock, len(HALF)) == HALF
        _toxic(proxy, type="reset_peer", attributes={"timeout": 100})  # the rest is dropped
        with pytest.raises(ConnectionResetError):
            assert sock.recv(100) == b""
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["status"], attempt["rid"]) == ("toxic", 200, RID)


def test_a_timeout_toxic_then_the_upstream_closing_is_toxic(proxy: dict[str, Any]) -> None:
    """The upstream sent it all and closed; the toxic dropped the rest: cut by the toxic."""
    with _connect(proxy) as sock:
        sock.sendall(_get("/slow"))
        _recv_exactly(sock, 20)
        _toxic(proxy, type="timeout", attributes={"timeout": 0})
        data = b""
        while chunk := sock.recv(100):
            data += chunk
        assert not data.endswith(b"67890")
    [attempt] = _attempts(proxy)["attempts"]
    assert (attempt["ended"], attempt["status"]) == ("toxic", 503)


def test_a_refused_attempt_starts_when_the_gateway_was_accepted(
        api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = proxy_module._dial

    async def slow_refusal(host: str, port: int) -> Any:
        await asyncio.sleep(0.5)  # a killed container's address: the dial hangs, then fails
        return await real(host, port)

    monkeypatch.setattr(proxy_module, "_dial", slow_refusal)
    info = next(toxiproxy_proxy(api, "refused_late", f"{LOOPBACK}:{free_port()}"))
    try:
        with socket.create_connection((LOOPBACK, info["port"]), timeout=5) as sock:
            connected = time.time()
            sock.sendall(_get("/v1/chat", method="POST"))
            with contextlib.suppress(ConnectionResetError):
                sock.recv(100)
            failed = time.time()
        [attempt] = _attempts(info, timeout=3)["attempts"]
    finally:
        requests.delete(info["api"], timeout=5)
    assert (attempt["ended"], attempt["rid"], attempt["path"]) == ("refused", RID, "/v1/chat")
    assert attempt["t"] == pytest.approx(connected, abs=0.1)
    assert attempt["end"] == pytest.approx(failed, abs=0.1)
    assert attempt["end"] - attempt["t"] >= 0.45


def test_a_proxy_deleted_while_a_refused_dial_peeks_closes_the_gateway(
        api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "PEEK_WAIT", 2.0)  # the peek for the head waits long
    info = next(toxiproxy_proxy(api, "deleted_peeking", f"{LOOPBACK}:{free_port()}"))
    with socket.create_connection((LOOPBACK, info["port"]), timeout=1.5) as sock:
        time.sleep(0.2)  # refused, peeking: nothing sent
        requests.delete(info["api"], timeout=5).raise_for_status()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""  # closed by the proxy, not left open (leaked)
