"""Each request's TCP connection, recorded by the locustfile's urllib3 hook, on real sockets.

A threaded server on 127.0.0.1 notes the client address of every connection it accepts
and answers "/ok" (keep-alive) or resets "/reset" (SO_LINGER 0: a TCP RST). The hook
(chaos.load.connections) must name exactly the connection the server saw: with plain
requests in this process (hook installed, then removed), and end to end through the real
locustfile run by LocustProcess. Where the test may open a packet socket (root), the
packets on the loopback interface are read too, and the failed-request samples built
from them must hold the packets of their own connection only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaos.capture import timeline
from chaos.capture.analysis import analyse
from chaos.capture.pcap import LINK_ETHERNET, Packet, parse_frame
from chaos.load import connections
from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load
from tests.fixtures.loopback import listening_socket

LOOPBACK = "127.0.0.1"
# Linux constants the socket module does not name
SO_TIMESTAMPNS, SO_ATTACH_FILTER, SO_RCVBUFFORCE, SOL_PACKET, PACKET_STATISTICS = 35, 26, 33, 263, 6
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\": true}"


class ResettingServer:
    """HTTP/1.1 keep-alive; "/reset" answers with a TCP RST. Notes every client address."""

    def __init__(self) -> None:
        self.sock, self.port = listening_socket()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.accepted: list[tuple[str, int]] = []
        self.reset: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted.append(peer)
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(5.0)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                if head.split(b" ")[1].startswith(b"/reset"):
                    with self.lock:
                        self.reset.append(peer)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                conn.sendall(OK)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.sock.close()


def _port_filter(ports: list[int]) -> bytes:
    """Classic BPF: IPv4/TCP frames (Ethernet framing, as on lo) to or from one of ports,
    so that other traffic on a busy loopback never fills the socket's buffer."""
    ops: list[tuple[int, int, int, int]] = [
        (0x28, 0, 0, 12), (0x15, 0, 0, 0x0800),    # ldh [12]; ethertype IPv4?
        (0x30, 0, 0, 23), (0x15, 0, 0, 6),         # ldb [23]; protocol TCP?
        (0x28, 0, 0, 20), (0x45, 0, 0, 0x1FFF),    # ldh [20]; a later fragment?
        (0xB1, 0, 0, 14),                          # ldxb 4*([14]&0xf): IP header length
    ]
    for offset in (14, 16):                        # source port, destination port
        ops.append((0x48, 0, 0, offset))           # ldh [x + offset]
        ops.extend((0x15, 0, 0, port) for port in ports)
    accept = len(ops) + 1                          # ret #0 is at len(ops), ret #65535 after
    fixed: list[tuple[int, int, int, int]] = []
    for i, (code, _jt, _jf, k) in enumerate(ops):
        if i in (1, 3):
            fixed.append((code, 0, len(ops) - i - 1, k))   # not IPv4/TCP: drop
        elif i == 5:
            fixed.append((code, len(ops) - i - 1, 0, k))   # fragment: drop
        elif code == 0x15:
            fixed.append((code, accept - i - 1, 0, k))     # port matches: accept
        else:
            fixed.append((code, 0, 0, k))
    fixed += [(0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFF)]
    return b"".join(struct.pack("HBBI", *op) for op in fixed)


class LoopbackSniffer:
    """TCP packets on lo, read through an AF_PACKET socket (needs CAP_NET_RAW)."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.packets: list[Packet] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        program = _port_filter(sorted(ports))
        self._program = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(self._program))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # the kernel's receive time
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                frame, ancillary, _flags, address = self.sock.recvmsg(65536, 64)
            except TimeoutError:
                if not self.running:  # stopped, and nothing is left queued
                    return
                continue
            except OSError:
                return
            if address[2] == socket.PACKET_OUTGOING:  # lo shows each packet twice
                continue
            stamp = time.time()
            for level, kind, data in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                    sec, nsec = struct.unpack("qq", data[:16])
                    stamp = sec + nsec / 1e9
            packet = parse_frame(LINK_ETHERNET, stamp, frame)
            if packet is not None and {packet.sport, packet.dport} & self.ports:
                self.packets.append(packet)

    def drops(self) -> int:
        """Packets the kernel could not queue for this socket (PACKET_STATISTICS)."""
        return int(struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1])

    def stop(self) -> list[Packet]:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()
        return sorted(self.packets, key=lambda p: p.ts)


def _sniffer(ports: set[int]) -> LoopbackSniffer | None:
    try:
        return LoopbackSniffer(ports)
    except (PermissionError, OSError, AttributeError):
        return None


@pytest.fixture()
def server() -> Iterator[ResettingServer]:
    srv = ResettingServer()
    yield srv
    srv.close()


@pytest.fixture()
def hook() -> Iterator[None]:
    connections.install()
    try:
        yield
    finally:
        connections.uninstall()


@pytest.fixture()
def refused_port() -> Iterator[int]:
    """Bound (so nobody else takes it) but not listening: a connect gets RST."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    yield sock.getsockname()[1]
    sock.close()


# --------------------------------------------------------------------------- with requests


def test_hook_names_the_connection_of_fresh_reused_and_reset_requests(server: ResettingServer,
                                                                      hook: None) -> None:
    session = requests.Session()
    seen: list[tuple[str, Any]] = []
    for path in ["/ok", "/ok", "/reset", "/ok", "/reset"]:
        try:
            session.get(server.url + path, timeout=2)
            seen.append(("ok", connections.take()))
        except requests.ConnectionError:
            seen.append(("failed", connections.take()))
    assert [kind for kind, _ in seen] == ["ok", "ok", "failed", "ok", "failed"]
    assert all(conn is not None and conn[2:] == (LOOPBACK, server.port) for _, conn in seen)
    ports = [conn[1] for _, conn in seen]
    # /ok, /ok and the first /reset share one keep-alive connection; the reset closes it
    assert ports[0] == ports[1] == ports[2] and ports[3] == ports[4] and ports[2] != ports[3]
    assert server.accepted == [(LOOPBACK, ports[0]), (LOOPBACK, ports[3])]
    assert server.reset == [(LOOPBACK, ports[2]), (LOOPBACK, ports[4])]
    assert connections.take() is None  # taken means forgotten


def test_hook_names_the_port_of_a_refused_syn(refused_port: int, hook: None) -> None:
    sniffer = _sniffer({refused_port})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{LOOPBACK}:{refused_port}/", timeout=2)
    conn = connections.take()
    assert conn is not None and conn[1] > 0 and conn[2:] == (LOOPBACK, refused_port)
    if sniffer is None:
        return
    time.sleep(0.1)
    packets = sniffer.stop()
    syns = [p for p in packets if p.syn and p.dport == refused_port]
    assert syns and {p.sport for p in syns} == {conn[1]}, packets
    assert any(p.rst and p.dport == conn[1] for p in packets)


def test_uninstall_restores_urllib3(server: ResettingServer) -> None:
    import urllib3.connectionpool
    import urllib3.util.connection

    before = (urllib3.connectionpool.HTTPConnectionPool._make_request,
              urllib3.util.connection.create_connection)
    connections.install()
    connections.install()  # idempotent
    connections.uninstall()
    assert (urllib3.connectionpool.HTTPConnectionPool._make_request,
            urllib3.util.connection.create_connection) == before
    requests.get(server.url + "/ok", timeout=2)
    assert connections.take() is None


# --------------------------------------------------------------------------- real locustfile


def _load(users: int) -> Load:
    return Load(target="gateway", users=users, spawn_rate=20, timeout="500ms",
                connect_timeout="300ms", wait="20ms",
                requests=[{"name": "ok", "path": "/ok", "weight": 3},
                          {"name": "reset", "path": "/reset", "weight": 1}])


def _run(load: Load, url: str, folder: Path, seconds: float = 2.5) -> list[dict[str, Any]]:
    proc = LocustProcess(load, url, folder, seconds)
    try:
        proc.start()
        proc.set_phase("probe")
        assert proc.proc is not None
        proc.proc.wait(timeout=60)
    finally:
        proc.stop(grace=5)
    records = [json.loads(line) for line in proc.records.read_text().splitlines()]
    assert records, proc.log_tail()
    return records


def test_locustfile_records_the_connection_of_every_request(server: ResettingServer,
                                                            refused_port: int,
                                                            tmp_path: Path) -> None:
    sniffer = _sniffer({server.port, refused_port})
    started = time.time()
    records = _run(_load(3), server.url, tmp_path / "served")
    refused = _run(Load(target="gateway", users=1, spawn_rate=5, timeout="500ms",
                        connect_timeout="300ms", wait="50ms",
                        requests=[{"name": "refused", "path": "/"}]),
                   f"http://{LOOPBACK}:{refused_port}", tmp_path / "refused", seconds=1.0)
    time.sleep(0.2)
    drops = sniffer.drops() if sniffer is not None else 0
    packets = sniffer.stop() if sniffer is not None else None

    resets = [r for r in records if r["outcome"] == "reset"]
    oks = [r for r in records if r["outcome"] == "ok"]
    assert len(resets) >= 5 and len(oks) >= 10, {r["outcome"] for r in records}
    with server.lock:
        accepted, reset = set(server.accepted), list(server.reset)
    for record in records:
        local_ip, local_port, remote_ip, remote_port = record["conn"]
        assert (remote_ip, remote_port) == (LOOPBACK, server.port)
        assert (local_ip, local_port) in accepted, record
    # every reset record names a connection the server reset, one record per reset
    reset_records = [(r["conn"][0], r["conn"][1]) for r in resets]
    assert set(reset_records) <= set(reset) and len(set(reset_records)) == len(reset_records)
    # keep-alive: ok requests share connections
    assert len({r["conn"][1] for r in oks}) < len(oks)
    assert {r["outcome"] for r in refused} == {"refused"}
    assert all(r["conn"][1] > 0 and r["conn"][2:] == [LOOPBACK, refused_port] for r in refused)
    if packets is None:
        pytest.skip("no packet socket here (needs CAP_NET_RAW): the samples were not checked")
    if drops:
        pytest.skip(f"the packet socket dropped {drops} packets: the samples were not checked")

    # the real packets, analysed as the evidence does, with each failed sample's packets
    names = {LOOPBACK: "client"}
    capture = analyse({"lo": packets}, names, started, "client")
    failures = timeline.read_failures(tmp_path / "served" / "requests.ndjson", started)
    failures += timeline.read_failures(tmp_path / "refused" / "requests.ndjson", started)
    samples = timeline.samples(failures, {}, started, "client", capture)
    assert {s["outcome"] for s in samples} == {"reset", "refused"}
    for sample in samples:
        assert sample["match"] == "connection", sample
        port = sample["connection"]["client_port"]
        assert sample["packets"], sample
        assert all(f":{port} " in line for line in sample["packets"]), sample
        if sample["outcome"] == "reset":
            assert any(f"→ {LOOPBACK}:{port} [R" in line for line in sample["packets"]), sample
        if sample["outcome"] == "refused":
            assert any(f"{LOOPBACK}:{port} → " in line and "[S]" in line for line in sample["packets"])
            assert any(f"→ {LOOPBACK}:{port} [R" in line for line in sample["packets"]), sample
