"""The embedded Toxiproxy server against a direct connection, side by side.

``python -m benchmarks.bench_proxy`` (``make bench``) starts three processes on
loopback: this client, the proxy (``python -m chaos.proxy.embedded``) and a
peer (``benchmarks.peer``), then measures, in one run:

* bulk throughput, MB/s, one connection sending ``--megabytes`` to a sink,
  direct and through a proxy with no toxics: each round measures both side by
  side (the order alternating from round to round), gives one proxied/direct
  ratio, and the median of those ratios is the figure (not best against best,
  which pairs numbers taken under different background load);
* added latency of a small request/response (64 bytes, ping-pong on one kept
  open connection), p50 and p99, proxied minus direct;
* latency-toxic accuracy: with a 50 ms downstream latency toxic, the extra
  round-trip time over the untoxic proxied p50, minus 50 ms, at p50 and p99;
* the HTTP tap's cost: two proxy processes, one with the tap and one with
  ``--no-tap``, driven with HTTP/1.1 (the tap parses nothing else) side by side
  in alternating rounds: bulk (a ``--tap-megabytes`` Content-Length upload
  answered with as many bytes) as the median of per-round tap-on/tap-off
  ratios, and a small keep-alive request/response as the median over blocks of
  the tap-on p50 minus the tap-off p50 of the same block;
* an HTTP-aware toxic's cost for traffic it does not match: two proxy processes
  (both with the tap), one with an ``http_abort`` toxic whose ``match`` never
  matches, the same HTTP bulk and small-request measures side by side in
  alternating rounds (median of per-round ratios; median of per-block p50 deltas).

Each measure is taken for every event loop the proxy can run on (``--loop``):
the standard asyncio loop and uvloop (the one the project's image runs).
It prints a table with the issue's targets and PASS/MISS per line and always
exits 0: it is a report, not a test (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import requests

LOOPBACK = "127.0.0.1"
LATENCY_MS = 50
T = TypeVar("T")


@dataclass
class Line:
    what: str
    direct: str
    proxied: str
    result: str
    target: str
    ok: bool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_api(url: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(requests.get(f"{url}/version", timeout=1).json()["version"])
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def throughput(port: int, megabytes: int) -> float:
    """MB/s of one connection sending ``megabytes`` to the sink, until it confirms."""
    block = b"x" * (256 * 1024)
    total = megabytes * 1024 * 1024
    with _connect(port) as sock:
        sock.sendall(b"S")
        started = time.perf_counter()
        for _ in range(total // len(block)):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 8:
            chunk = sock.recv(8 - len(reply))
            if not chunk:
                raise RuntimeError("sink closed early")
            reply += chunk
        elapsed = time.perf_counter() - started
    received = struct.unpack("!Q", reply)[0]
    if received != total:
        raise RuntimeError(f"sink got {received} of {total} bytes")
    return total / elapsed / 1e6


def ping_pong(port: int, rounds: int, warmup: int = 50) -> list[float]:
    """Round-trip times (ms) of 64-byte messages on one kept-open connection."""
    message = b"p" * 64
    times: list[float] = []
    with _connect(port) as sock:
        sock.sendall(b"E")
        for index in range(warmup + rounds):
            started = time.perf_counter()
            sock.sendall(message)
            got = 0
            while got < len(message):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("echo closed early")
                got += len(chunk)
            if index >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    return times


HTTP_REPLY_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"


def _http_head(path: str, length: int, reply: int, index: int = 0) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nX-Chaos-Request-Id: {index:032x}\r\n"
            f"Content-Length: {length}\r\nX-Reply: {reply}\r\n\r\n").encode()


def _read_exactly(sock: socket.socket, size: int, buf: bytearray) -> None:
    view = memoryview(buf)
    while size:
        count = sock.recv_into(view, min(size, len(buf)))
        if not count:
            raise RuntimeError("peer closed early")
        size -= count


def http_bulk(port: int, megabytes: int) -> float:
    """MB/s (both ways) of one HTTP exchange: a Content-Length upload answered in kind."""
    block = b"x" * (256 * 1024)
    total = megabytes * 1024 * 1024
    buf = bytearray(1 << 20)
    with _connect(port) as sock:
        started = time.perf_counter()
        sock.sendall(_http_head("/bulk", total, total))
        for _ in range(total // len(block)):
            sock.sendall(block)
        _read_exactly(sock, len(HTTP_REPLY_HEAD % total) + total, buf)
        elapsed = time.perf_counter() - started
    return 2 * total / elapsed / 1e6


def http_ping_pong(port: int, rounds: int, warmup: int = 50) -> list[float]:
    """Round-trip times (ms) of 64-byte HTTP requests and responses on one keep-alive
    connection, each request with its own request id."""
    expect = len(HTTP_REPLY_HEAD % 64) + 64
    buf = bytearray(4096)
    times: list[float] = []
    with _connect(port) as sock:
        for index in range(warmup + rounds):
            message = _http_head("/v1/ping", 64, 64, index) + b"p" * 64
            started = time.perf_counter()
            sock.sendall(message)
            _read_exactly(sock, expect, buf)
            if index >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def paired(base: Callable[[], T], other: Callable[[], T], rounds: int) -> list[tuple[T, T]]:
    """(base, other) per round, side by side, the order alternating."""
    pairs = []
    for index in range(rounds):
        if index % 2 == 0:
            first = base()
            second = other()
        else:
            second = other()
            first = base()
        pairs.append((first, second))
    return pairs


def bulk_pairs(direct_port: int, proxy_port: int, megabytes: int, rounds: int
               ) -> list[tuple[float, float]]:
    """(direct, proxied) MB/s per round, side by side, the order alternating."""
    return paired(lambda: throughput(direct_port, megabytes),
                  lambda: throughput(proxy_port, megabytes), rounds)


def added_p50(blocks: list[tuple[list[float], list[float]]]) -> float:
    """Median over blocks of (p50 of the second list - p50 of the first), both from one block."""
    return statistics.median(pct(other, 0.5) - pct(base, 0.5) for base, other in blocks)


def bulk_figures(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Median direct MB/s, median proxied MB/s, and the median of per-pair ratios."""
    return (statistics.median(d for d, _ in pairs), statistics.median(p for _, p in pairs),
            statistics.median(p / d for d, p in pairs))


@contextlib.contextmanager
def _proxy(loop: str, peer_port: int, *extra: str) -> Iterator[tuple[str, int, int]]:
    """A proxy server process on ``loop`` with one proxy "bench" -> the peer:
    (api, port, pid)."""
    api_port = _free_port()
    api = f"http://{LOOPBACK}:{api_port}"
    proxy_cmd = [sys.executable, "-m", "chaos.proxy.embedded", "--port", str(api_port),
                 "--log-level", "warning", "--loop", loop, *extra]
    with _process(proxy_cmd) as proc:
        version = _wait_api(api)
        body = {"name": "bench", "listen": f"{LOOPBACK}:0", "upstream": f"{LOOPBACK}:{peer_port}"}
        created = requests.post(f"{api}/proxies", json=body, timeout=5)
        created.raise_for_status()
        proxy_port = int(created.json()["listen"].rsplit(":", 1)[1])
        print(f"[{loop}] server {version} {' '.join(extra)}; proxy :{proxy_port}", flush=True)
        yield api, proxy_port, proc.pid


def measure(args: argparse.Namespace, loop: str, peer_port: int) -> list[Line]:
    """Every measure against a proxy process running on ``loop``."""
    with _proxy(loop, peer_port) as (api, proxy_port, _pid):
        throughput(peer_port, 16)  # warm both paths
        throughput(proxy_port, 16)
        pairs = bulk_pairs(peer_port, proxy_port, args.megabytes, args.repeat)
        print(f"[{loop}] bulk rounds, direct/proxied MB/s (ratio): " + ", ".join(
            f"{d:.0f}/{p:.0f} ({p / d:.0%})" for d, p in pairs), flush=True)
        direct = ping_pong(peer_port, args.rounds)
        proxied = ping_pong(proxy_port, args.rounds)
        toxic = {"type": "latency", "stream": "downstream", "attributes": {"latency": LATENCY_MS}}
        requests.post(f"{api}/proxies/bench/toxics", json=toxic, timeout=5).raise_for_status()
        baseline = statistics.median(proxied)
        errors = [t - baseline - LATENCY_MS for t in ping_pong(proxy_port, args.toxic_rounds, 5)]
    direct_mb, proxied_mb, ratio = bulk_figures(pairs)
    added50 = pct(proxied, 0.5) - pct(direct, 0.5)
    added99 = pct(proxied, 0.99) - pct(direct, 0.99)
    err50, err1, err99 = pct(errors, 0.5), pct(errors, 0.01), pct(errors, 0.99)
    return [
        Line(f"[{loop}] bulk MB/s, median of {len(pairs)} pair ratios", f"{direct_mb:.0f}",
             f"{proxied_mb:.0f}", f"{ratio:.0%} of direct", ">= 50%", ratio >= 0.5),
        Line(f"[{loop}] small req/resp p50 (ms)", f"{pct(direct, 0.5):.3f}",
             f"{pct(proxied, 0.5):.3f}", f"{added50:+.3f} ms", "added < 0.3 ms", added50 < 0.3),
        Line(f"[{loop}] small req/resp p99 (ms)", f"{pct(direct, 0.99):.3f}",
             f"{pct(proxied, 0.99):.3f}", f"{added99:+.3f} ms", "(reported)", True),
        Line(f"[{loop}] latency={LATENCY_MS}ms error p50 (ms)", "", "", f"{err50:+.2f} ms",
             "(reported)", True),
        Line(f"[{loop}] latency={LATENCY_MS}ms error p1..p99 (ms)", "", "",
             f"{err1:+.2f} .. {err99:+.2f} ms", "within ±5 ms",
             max(abs(err1), abs(err99)) <= 5),
    ]


def measure_tap(args: argparse.Namespace, loop: str, peer_port: int) -> list[Line]:
    """Tap on against tap off (``--no-tap``), HTTP traffic, alternating rounds."""
    cpu = {"off": 0.0, "on": 0.0}

    def bulk(port: int, pid: int, side: str) -> float:
        before = cpu_seconds(pid)
        speed = http_bulk(port, args.tap_megabytes)
        cpu[side] += cpu_seconds(pid) - before
        return speed

    with _proxy(loop, peer_port) as (api_on, port_on, pid_on), \
            _proxy(loop, peer_port, "--no-tap") as (_api_off, port_off, pid_off):
        http_bulk(port_off, 16)  # warm both
        http_bulk(port_on, 16)
        pairs = paired(lambda: bulk(port_off, pid_off, "off"),
                       lambda: bulk(port_on, pid_on, "on"), args.tap_repeat)
        print(f"[{loop}] HTTP bulk rounds, tap off/on MB/s (ratio): " + ", ".join(
            f"{off:.0f}/{on:.0f} ({on / off:.0%})" for off, on in pairs), flush=True)
        per_block = max(50, args.rounds // args.tap_blocks)
        blocks = paired(lambda: http_ping_pong(port_off, per_block),
                        lambda: http_ping_pong(port_on, per_block), args.tap_blocks)
        seen = requests.get(f"{api_on}/proxies/bench/attempts", params={"limit": 10**6},
                            timeout=30).json()
    off_mb, on_mb, ratio = bulk_figures(pairs)
    added = added_p50(blocks)
    off_all = [t for off, _ in blocks for t in off]
    on_all = [t for _, on in blocks for t in on]
    recorded = len(seen["attempts"]) + seen["dropped"]
    per_gb = {side: used / (2 * args.tap_megabytes * len(pairs) / 1024) for side, used
              in cpu.items()}
    return [
        Line(f"[{loop}] tap: HTTP bulk MB/s, median of {len(pairs)} pair ratios",
             f"{off_mb:.0f}", f"{on_mb:.0f}", f"{ratio:.1%} of tap off", ">= 95%",
             ratio >= 0.95),
        Line(f"[{loop}] tap: proxy CPU seconds per GB moved (bulk)", f"{per_gb['off']:.2f}",
             f"{per_gb['on']:.2f}", f"{per_gb['on'] - per_gb['off']:+.2f} s/GB", "(reported)",
             True),
        Line(f"[{loop}] tap: HTTP small req/resp p50 (ms), {len(blocks)} blocks",
             f"{pct(off_all, 0.5):.3f}", f"{pct(on_all, 0.5):.3f}", f"{added:+.3f} ms",
             "added <= 0.05 ms", added <= 0.05),
        Line(f"[{loop}] tap: HTTP small req/resp p99 (ms)", f"{pct(off_all, 0.99):.3f}",
             f"{pct(on_all, 0.99):.3f}", f"{pct(on_all, 0.99) - pct(off_all, 0.99):+.3f} ms",
             "(reported)", True),
        Line(f"[{loop}] tap: attempts it recorded", "", "",
             f"{recorded} (connections {seen['connections']})", "(reported)", recorded > 0),
    ]


NEVER_MATCH = {"name": "never", "type": "http_abort",
               "attributes": {"status": 503, "match": {"header": {"X-Never": "1"}}}}


def measure_http_toxic(args: argparse.Namespace, loop: str, peer_port: int) -> list[Line]:
    """No toxic against an ``http_abort`` that never matches, HTTP traffic, alternating."""
    with _proxy(loop, peer_port) as (_api_off, port_off, _pid_off), \
            _proxy(loop, peer_port) as (api_on, port_on, _pid_on):
        requests.post(f"{api_on}/proxies/bench/toxics", json=NEVER_MATCH,
                      timeout=5).raise_for_status()
        http_bulk(port_off, 16)  # warm both
        http_bulk(port_on, 16)
        pairs = paired(lambda: http_bulk(port_off, args.tap_megabytes),
                       lambda: http_bulk(port_on, args.tap_megabytes), args.tap_repeat)
        print(f"[{loop}] HTTP bulk rounds, no toxic/unmatched http_abort MB/s (ratio): "
              + ", ".join(f"{off:.0f}/{on:.0f} ({on / off:.0%})" for off, on in pairs),
              flush=True)
        per_block = max(50, args.rounds // args.tap_blocks)
        blocks = paired(lambda: http_ping_pong(port_off, per_block),
                        lambda: http_ping_pong(port_on, per_block), args.tap_blocks)
    off_mb, on_mb, ratio = bulk_figures(pairs)
    added = added_p50(blocks)
    off_all = [t for off, _ in blocks for t in off]
    on_all = [t for _, on in blocks for t in on]
    return [
        Line(f"[{loop}] unmatched http_abort: HTTP bulk MB/s, median of {len(pairs)} pair "
             "ratios", f"{off_mb:.0f}", f"{on_mb:.0f}", f"{ratio:.1%} of no toxic", ">= 95%",
             ratio >= 0.95),
        Line(f"[{loop}] unmatched http_abort: HTTP small req/resp p50 (ms), {len(blocks)} "
             "blocks", f"{pct(off_all, 0.5):.3f}", f"{pct(on_all, 0.5):.3f}",
             f"{added:+.3f} ms", "added <= 0.05 ms", added <= 0.05),
    ]


def run(args: argparse.Namespace) -> list[Line]:
    loops = args.loop or ["asyncio", "uvloop"]
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: measuring asyncio only", flush=True)
        loops = [loop for loop in loops if loop != "uvloop"] or ["asyncio"]
    with _process([sys.executable, "-m", "benchmarks.peer"]) as peer:
        assert peer.stdout is not None
        peer_port = int(peer.stdout.readline())
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work skews "
              "every number)", flush=True)
        print(f"peer :{peer_port}; {args.megabytes} MB bulk x {args.repeat} pairs, "
              f"{args.rounds} ping-pongs, {args.toxic_rounds} with latency={LATENCY_MS}ms; "
              f"loops: {', '.join(loops)}", flush=True)
        lines = []
        for loop in loops:
            if args.only_http_toxic:
                lines += measure_http_toxic(args, loop, peer_port)
                continue
            lines += measure(args, loop, peer_port)
            if not args.no_tap_bench:
                lines += measure_tap(args, loop, peer_port)
            if not args.no_http_toxic_bench:
                lines += measure_http_toxic(args, loop, peer_port)
        return lines


def render(lines: list[Line]) -> str:
    header = ("measure", "direct/tap off", "proxied/tap on", "result", "target", "")
    rows = [header] + [(ln.what, ln.direct, ln.proxied, ln.result, ln.target,
                        "PASS" if ln.ok else "MISS") for ln in lines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_proxy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5,
                        help="bulk rounds (direct and proxied side by side); the median "
                        "of the per-round ratios counts")
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--toxic-rounds", type=int, default=200)
    parser.add_argument("--tap-megabytes", type=int, default=128,
                        help="HTTP bulk size for the tap on/off pairs (each way)")
    parser.add_argument("--tap-repeat", type=int, default=9,
                        help="tap on/off HTTP bulk pairs; the median of their ratios counts")
    parser.add_argument("--tap-blocks", type=int, default=6,
                        help="alternating blocks of --rounds/blocks small HTTP exchanges")
    parser.add_argument("--no-tap-bench", action="store_true", help="skip the tap on/off part")
    parser.add_argument("--no-http-toxic-bench", action="store_true",
                        help="skip the unmatched http_abort against no toxic part")
    parser.add_argument("--only-http-toxic", action="store_true",
                        help="only the unmatched http_abort against no toxic part")
    parser.add_argument("--loop", action="append", choices=["asyncio", "uvloop"],
                        help="measure only this loop (repeatable; default: both)")
    args = parser.parse_args(argv)
    try:
        print(render(run(args)))
    except Exception as exc:  # a report: say what broke, still exit 0
        print(f"benchmark could not run: {exc!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
