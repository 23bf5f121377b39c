"""The zero-copy (splice) path and its hand-over to the toxic path on live streams.

A bulk direction with no toxic moves its bytes with ``splice``; a toxic added in
the middle of the stream must take over from the next chunk, with every byte
delivered once and in order, and the zero-copy path must come back once the
toxic is removed. The streams are random bytes checked by length and SHA-256,
so a lost, repeated or reordered chunk fails the test. ``splice`` calls are
counted to show which path carried the bytes at each moment.
"""

from __future__ import annotations

import hashlib
import random
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from chaos.proxy.embedded import ServerThread, endpoint
from tests.fixtures.loopback import toxiproxy_proxy

LOOPBACK = "127.0.0.1"
TOTAL = 48 * 1024 * 1024
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(not endpoint.SPLICE, reason="splice is Linux-only")


def _payload(seed: int, size: int = TOTAL) -> bytes:
    return random.Random(seed).randbytes(size)


class _Upstream(socketserver.BaseRequestHandler):
    """``send SIZE SEED``: stream that payload, then close. ``sink``: read to EOF,
    answer ``<count> <sha256>``."""

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
            sock.sendall(_payload(int(command[2]), int(command[1])))
        elif command[0] == "sink":
            digest, count = hashlib.sha256(), 0
            while data := sock.recv(1 << 20):
                digest.update(data)
                count += len(data)
            sock.sendall(f"{count} {digest.hexdigest()}".encode())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = _Server((LOOPBACK, 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return loops
    return [*loops, pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.fixture(scope="module", params=_loops())
def api(request: pytest.FixtureRequest) -> Iterator[str]:
    with ServerThread(LOOPBACK, 0, loop_factory=request.param) as server:
        yield server.url


@pytest.fixture()
def splices(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many splice calls moved bytes so far (both directions, all connections)."""
    count = [0]
    real = endpoint._splice
    assert real is not None

    def counting(*args: Any, **kwargs: Any) -> int:
        moved: int = real(*args, **kwargs)
        if moved:
            count[0] += 1
        return moved

    monkeypatch.setattr(endpoint, "_splice", counting)
    return lambda: count[0]


@pytest.fixture()
def proxy(api: str, upstream: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    name = request.node.name.replace("[", "_").replace("]", "")
    yield from toxiproxy_proxy(api, name, upstream)


def _toxic(proxy: dict[str, Any], **body: Any) -> None:
    response = requests.post(f"{proxy['api']}/toxics", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _untoxic(proxy: dict[str, Any], name: str) -> None:
    assert requests.delete(f"{proxy['api']}/toxics/{name}", timeout=5).status_code == 204


def _stats(proxy: dict[str, Any], active: int = 0) -> dict[str, Any]:
    """Stats once the proxy has closed its connections (counts are final then)."""
    deadline = time.monotonic() + 5
    while True:
        stats: dict[str, Any] = requests.get(f"{proxy['api']}/stats", timeout=5).json()
        if stats["connections"]["active"] == active or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


class _Reader(threading.Thread):
    """Reads a stream to EOF, hashing it; pauses at ``pause_at`` bytes until released."""

    def __init__(self, sock: socket.socket, pause_at: int) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.pause_at = pause_at
        self.paused = threading.Event()
        self.release = threading.Event()
        self.digest = hashlib.sha256()
        self.received = 0
        self.times: list[float] = []  # when each chunk arrived
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while chunk := self.sock.recv(1 << 20):
                self.digest.update(chunk)
                self.received += len(chunk)
                self.times.append(time.monotonic())
                if self.received >= self.pause_at and not self.release.is_set():
                    self.paused.set()
                    self.release.wait(10)
        except BaseException as exc:  # reported by the test
            self.error = exc


def _stalls(progress: Callable[[], int], settle: float = 0.5, hold: float = 0.5) -> int:
    """Wait for in-flight bytes to land, then check nothing more arrives for ``hold``."""
    time.sleep(settle)
    before = progress()
    time.sleep(hold)
    assert progress() == before, "bytes kept flowing while a blocking toxic applied"
    return before


def test_blocking_toxic_mid_stream_takes_over_then_zero_copy_resumes(
        proxy: dict[str, Any], splices: Callable[[], int]) -> None:
    expected = hashlib.sha256(_payload(7)).hexdigest()
    with socket.create_connection((LOOPBACK, proxy["port"]), timeout=10) as sock:
        sock.sendall(f"send {TOTAL} 7\n".encode())
        reader = _Reader(sock, pause_at=8 * MIB)
        reader.start()
        assert reader.paused.wait(10)
        assert splices() > 0, "a bulk stream with no toxic should move by splice"
        _toxic(proxy, type="latency", attributes={"latency": 2000})  # holds data 2 s
        reader.release.set()
        held_at = _stalls(lambda: reader.received)
        assert held_at < TOTAL
        spliced = splices()
        time.sleep(0.2)
        assert splices() == spliced, "spliced while a toxic applied"
        _untoxic(proxy, "latency_downstream")
        reader.join(15)
        assert not reader.is_alive() and reader.error is None
        assert reader.received == TOTAL
        assert reader.digest.hexdigest() == expected
        assert splices() > spliced, "zero-copy did not resume once the toxic was removed"
    stats = _stats(proxy)
    assert stats["bytes"]["downstream"] == TOTAL
    assert stats["bytes"]["upstream"] == len(f"send {TOTAL} 7\n")


def test_latency_toxic_mid_stream_delays_the_rest(proxy: dict[str, Any],
                                                  splices: Callable[[], int]) -> None:
    expected = hashlib.sha256(_payload(11)).hexdigest()
    with socket.create_connection((LOOPBACK, proxy["port"]), timeout=10) as sock:
        sock.sendall(f"send {TOTAL} 11\n".encode())
        reader = _Reader(sock, pause_at=8 * MIB)
        reader.start()
        assert reader.paused.wait(10)
        assert splices() > 0
        _toxic(proxy, type="latency", attributes={"latency": 300})
        reader.release.set()
        released = time.monotonic()
        # What was in flight arrives at once; what the proxy reads from now on waits 300 ms.
        while reader.is_alive() and time.monotonic() - released < 1.0:
            time.sleep(0.01)
        _untoxic(proxy, "latency_downstream")
        reader.join(15)
        assert reader.error is None and reader.received == TOTAL
        assert reader.digest.hexdigest() == expected
    arrivals = [t for t in reader.times if t >= released]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) >= 0.25, "no chunk was held back by the latency toxic"
    assert _stats(proxy)["bytes"]["downstream"] == TOTAL


def test_upstream_bandwidth_toxic_mid_upload(proxy: dict[str, Any],
                                             splices: Callable[[], int]) -> None:
    payload = _payload(3)
    sent = [0]
    with socket.create_connection((LOOPBACK, proxy["port"]), timeout=15) as sock:
        sock.sendall(b"sink\n")

        def upload() -> None:
            view = memoryview(payload)
            for offset in range(0, TOTAL, MIB):
                sock.sendall(view[offset:offset + MIB])
                sent[0] = offset + MIB
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        while sent[0] < 8 * MIB:
            time.sleep(0.001)
        _toxic(proxy, type="bandwidth", stream="upstream", attributes={"rate": 2000})
        time.sleep(0.5)  # buffers fill up; then the client can only send at 2 MB/s
        spliced, before = splices(), sent[0]
        time.sleep(1.0)
        assert splices() == spliced
        assert sent[0] - before <= 4 * MIB, "the bandwidth toxic did not slow the upload"
        assert sent[0] < TOTAL
        _untoxic(proxy, "bandwidth_upstream")
        sender.join(15)
        assert not sender.is_alive()
        reply = b""
        while chunk := sock.recv(256):
            reply += chunk
    count, digest = reply.decode().split()
    assert int(count) == TOTAL
    assert digest == hashlib.sha256(payload).hexdigest()
    assert splices() > spliced
    assert _stats(proxy)["bytes"]["upstream"] == TOTAL + len(b"sink\n")


def test_small_exchanges_stay_off_the_splice_path(proxy: dict[str, Any],
                                                  splices: Callable[[], int]) -> None:
    """Request/response traffic never allocates a kernel pipe (2 descriptors each)."""
    with socket.create_connection((LOOPBACK, proxy["port"]), timeout=5) as sock:
        sock.sendall(b"send 5000 1\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data == _payload(1, 5000)
    assert splices() == 0
    stats = _stats(proxy)
    assert stats["bytes"] == {"upstream": len(b"send 5000 1\n"), "downstream": 5000}


def test_toxic_added_before_the_stream_never_splices(proxy: dict[str, Any],
                                                     splices: Callable[[], int]) -> None:
    _toxic(proxy, type="noop")
    expected = hashlib.sha256(_payload(5, 8 * MIB)).hexdigest()
    with socket.create_connection((LOOPBACK, proxy["port"]), timeout=10) as sock:
        sock.sendall(f"send {8 * MIB} 5\n".encode())
        reader = _Reader(sock, pause_at=TOTAL)
        reader.run()
    assert reader.error is None and reader.digest.hexdigest() == expected
    assert splices() == 0
    assert _stats(proxy)["bytes"]["downstream"] == 8 * MIB


def test_toxics_flapping_during_transfers_lose_nothing(proxy: dict[str, Any],
                                                       splices: Callable[[], int]) -> None:
    """Toxics added and removed every few ms, both directions, two bulk streams at once."""
    size = 32 * MIB
    upload = _payload(21, size)
    expected_down = hashlib.sha256(_payload(22, size)).hexdigest()
    results: dict[str, Any] = {}

    def up() -> None:
        with socket.create_connection((LOOPBACK, proxy["port"]), timeout=20) as sock:
            sock.sendall(b"sink\n")
            view = memoryview(upload)
            for offset in range(0, size, 256 * 1024):
                sock.sendall(view[offset:offset + 256 * 1024])
                time.sleep(0.01)  # spread the stream over many toxic flips
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(256):
                reply += chunk
            results["up"] = reply.decode()

    def down() -> None:
        with socket.create_connection((LOOPBACK, proxy["port"]), timeout=20) as sock:
            sock.sendall(f"send {size} 22\n".encode())
            digest, received = hashlib.sha256(), 0
            while chunk := sock.recv(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
                time.sleep(0.0005)
            results["down"] = (received, digest.hexdigest())

    threads = [threading.Thread(target=up, daemon=True), threading.Thread(target=down, daemon=True)]
    for thread in threads:
        thread.start()
    kinds = [
        {"type": "noop"},
        {"type": "latency", "attributes": {"latency": 2, "jitter": 1}},
        {"type": "slicer", "attributes": {"average_size": 8192, "size_variation": 1000}},
        {"type": "bandwidth", "attributes": {"rate": 200_000}},
    ]  # not timeout: it drops data and closes the connection when removed, as upstream
    rng = random.Random(5)
    flips = 0
    with requests.Session() as http:
        while any(t.is_alive() for t in threads) and flips < 1000:
            kind = rng.choice(kinds)
            stream = rng.choice(["upstream", "downstream"])
            assert http.post(f"{proxy['api']}/toxics", json={"stream": stream, **kind},
                             timeout=5).status_code == 200
            time.sleep(rng.uniform(0.0, 0.01))
            assert http.delete(f"{proxy['api']}/toxics/{kind['type']}_{stream}",
                               timeout=5).status_code == 204
            time.sleep(rng.uniform(0.0, 0.01))
            flips += 1
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    print(f"{flips} toxic flips, {splices()} splices")
    assert results["up"] == f"{size} {hashlib.sha256(upload).hexdigest()}"
    assert results["down"] == (size, expected_down)
    assert flips >= 20
    assert splices() > 0
    stats = _stats(proxy)
    assert stats["bytes"]["upstream"] == size + len(b"sink\n") + len(f"send {size} 22\n")
    assert stats["bytes"]["downstream"] == size + len(results["up"])
