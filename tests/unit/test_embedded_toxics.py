"""What a TCP client sees through the embedded server's toxics (real sockets)."""

from __future__ import annotations

import socket
import socketserver
import time
from typing import Any

import pytest
import requests

from tests.fixtures.embedded import proxy_fixtures

LOOPBACK = "127.0.0.1"


class _Upstream(socketserver.BaseRequestHandler):
    """First line picks the mode: echo, ``send N`` (N bytes, then close), close."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        line = b""
        while not line.endswith(b"\n"):
            data = sock.recv(1)
            if not data:
                return
            line += data
        command = line.decode().split()
        if command[0] == "send":
            sock.sendall(b"x" * int(command[1]))
        elif command[0] == "close":
            sock.sendall(b"bye")
        else:
            while data := sock.recv(65536):
                sock.sendall(data)


upstream, api, proxy = proxy_fixtures(_Upstream)


def _toxic(proxy: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = requests.post(f"{proxy['api']}/toxics", json=body, timeout=5)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _connect(proxy: dict[str, Any], mode: str = "echo") -> socket.socket:
    sock = socket.create_connection((LOOPBACK, proxy["port"]), timeout=5)
    sock.sendall(mode.encode() + b"\n")
    return sock


def _roundtrip(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        received += chunk
    assert received == payload
    return time.monotonic() - started


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer ends the connection (FIN or RST) without sending more."""
    try:
        return _read_all(sock) == b""
    except ConnectionResetError:
        return True


def test_plain_proxying_and_half_close(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"a" * 100_000) < 1.0
        sock.sendall(b"tail")
        sock.shutdown(socket.SHUT_WR)  # the upstream still answers after our EOF
        assert _read_all(sock) == b"tail"


def test_latency_delays_each_chunk_on_open_connections(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        _roundtrip(sock)
        _toxic(proxy, type="latency", attributes={"latency": 100})
        assert _roundtrip(sock) >= 0.095
        _toxic(proxy, type="latency", stream="upstream", attributes={"latency": 50})
        assert _roundtrip(sock) >= 0.145
        requests.delete(f"{proxy['api']}/toxics/latency_downstream", timeout=5)
        requests.delete(f"{proxy['api']}/toxics/latency_upstream", timeout=5)
        assert _roundtrip(sock) < 0.09


def test_latency_keeps_throughput(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="latency", attributes={"latency": 100})
    with _connect(proxy, "send 2000000") as sock:
        started = time.monotonic()
        assert len(_read_all(sock)) == 2_000_000
        elapsed = time.monotonic() - started
    assert 0.095 <= elapsed < 2.0  # one delay for the stream, not one per chunk


def test_bandwidth_paces_payload(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="bandwidth", attributes={"rate": 400})  # 400 KB/s
    with _connect(proxy, "send 200000") as sock:
        started = time.monotonic()
        assert len(_read_all(sock)) == 200_000
        elapsed = time.monotonic() - started
    assert elapsed >= 0.4  # 200 KB at 400 KB/s is 0.5 s


@pytest.mark.parametrize(("kind", "attributes"), [
    ("bandwidth", {}), ("bandwidth", {"rate": 0}), ("slicer", {"delay": 5})])
def test_toxics_without_their_size_pass_data_whole(proxy: dict[str, Any], kind: str,
                                                    attributes: dict[str, int]) -> None:
    # The real server accepts these; rate 0 means unlimited, a slicer with no
    # average_size (which would panic upstream) passes chunks unsliced.
    _toxic(proxy, type=kind, attributes=attributes)
    with _connect(proxy, "send 300000") as sock:
        started = time.monotonic()
        assert len(_read_all(sock)) == 300_000
        assert time.monotonic() - started < 1.0


def test_slow_close_delays_eof(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="slow_close", attributes={"delay": 300})
    with _connect(proxy, "close") as sock:
        started = time.monotonic()
        assert sock.recv(10) == b"bye"
        assert time.monotonic() - started < 0.25
        assert _read_all(sock) == b""
        assert time.monotonic() - started >= 0.295


def test_timeout_stops_data_then_closes(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        _roundtrip(sock)
        _toxic(proxy, type="timeout", attributes={"timeout": 400})
        started = time.monotonic()
        sock.sendall(b"lost")
        assert _closed_by_peer(sock)
        assert time.monotonic() - started >= 0.39


def test_timeout_zero_drops_data_and_removal_closes(proxy: dict[str, Any]) -> None:
    # The real server (toxics/timeout.go) drops what meets the toxic and, when the
    # toxic is deleted, closes the connection: nothing held comes out later.
    with _connect(proxy) as sock:
        _roundtrip(sock)
        _toxic(proxy, type="timeout", attributes={"timeout": 0})
        sock.sendall(b"lost")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        requests.delete(f"{proxy['api']}/toxics/timeout_downstream", timeout=5)
        sock.settimeout(5)
        started = time.monotonic()
        assert _closed_by_peer(sock)
        assert time.monotonic() - started < 1.0


def test_timeout_passes_the_peers_close_at_once(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="timeout", attributes={"timeout": 0})
    with _connect(proxy, "close") as sock:  # the upstream sends "bye" and closes
        sock.settimeout(2)
        started = time.monotonic()
        assert _read_all(sock) == b""  # "bye" dropped, the close passed on
        assert time.monotonic() - started < 1.0


def test_timeout_timer_restarts_on_every_chunk(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="timeout", stream="upstream", attributes={"timeout": 500})
    with _connect(proxy) as sock:
        for _ in range(8):  # 1.2 s of traffic every 150 ms outlives timeout=500
            time.sleep(0.15)
            sock.sendall(b".")
        sock.settimeout(0.05)
        with pytest.raises(TimeoutError):  # still open: no EOF, no reset
            sock.recv(10)
        sock.settimeout(5)
        started = time.monotonic()
        assert _closed_by_peer(sock)  # quiet now: closed after 500 ms
        assert 0.35 <= time.monotonic() - started < 1.5


def test_timeout_toxic_update_keeps_connection(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="timeout", attributes={"timeout": 0})
    with _connect(proxy) as sock:
        response = requests.post(f"{proxy['api']}/toxics/timeout_downstream",
                                 json={"attributes": {"timeout": 300}}, timeout=5)
        assert response.status_code == 200, response.text
        started = time.monotonic()
        assert _closed_by_peer(sock)
        assert 0.25 <= time.monotonic() - started < 1.5


def test_reset_peer_gives_econnreset(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="reset_peer", stream="upstream", attributes={"timeout": 200})
    with _connect(proxy) as sock:
        started = time.monotonic()
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"request")
            _read_all(sock)
        assert time.monotonic() - started >= 0.195


def test_toxicity_zero_never_applies(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="latency", toxicity=0, attributes={"latency": 300})
    for _ in range(5):
        with _connect(proxy) as sock:
            assert _roundtrip(sock) < 0.25
    stats = requests.get(f"{proxy['api']}/stats", timeout=5).json()
    assert stats["toxics"] == {}
    assert stats["connections"]["total"] == 5


def test_toxicity_one_counts_every_connection(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="noop", toxicity=1)
    for _ in range(3):
        with _connect(proxy) as sock:
            _roundtrip(sock, b"abc")
    stats = requests.get(f"{proxy['api']}/stats", timeout=5).json()
    assert stats["toxics"]["noop_downstream"]["connections"] == 3
    assert stats["bytes"]["downstream"] >= 9
    assert stats["bytes"]["upstream"] >= 9 + 3 * len("echo\n")


def test_disabling_closes_connections(proxy: dict[str, Any]) -> None:
    with _connect(proxy) as sock:
        _roundtrip(sock)
        response = requests.post(proxy["api"], json={"enabled": False}, timeout=5)
        assert response.json()["enabled"] is False
        sock.settimeout(2)
        assert _closed_by_peer(sock)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, proxy["port"]), timeout=2)
    requests.post(proxy["api"], json={"enabled": True}, timeout=5)
    with _connect(proxy) as sock:  # re-enabled on the same port
        _roundtrip(sock)


def test_limit_data_and_slicer(proxy: dict[str, Any]) -> None:
    _toxic(proxy, type="slicer", attributes={"average_size": 100, "size_variation": 20})
    with _connect(proxy, "send 5000") as sock:
        assert len(_read_all(sock)) == 5000
    _toxic(proxy, type="limit_data", attributes={"bytes": 1000})
    with _connect(proxy, "send 5000") as sock:
        assert len(_read_all(sock)) == 1000


def test_unreachable_upstream_closes_client(api: str) -> None:
    spare = socket.socket()
    spare.bind((LOOPBACK, 0))
    dead = f"{LOOPBACK}:{spare.getsockname()[1]}"
    spare.close()  # nothing listens there now
    info = requests.post(f"{api}/proxies", json={"name": "dead", "upstream": dead,
                                                 "listen": f"{LOOPBACK}:0"}, timeout=5).json()
    try:
        port = int(info["listen"].rsplit(":", 1)[1])
        with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
            assert _closed_by_peer(sock)
        stats = requests.get(f"{api}/proxies/dead/stats", timeout=5).json()
        assert stats["connections"]["dial_failures"] == 1
    finally:
        requests.delete(f"{api}/proxies/dead", timeout=5)
