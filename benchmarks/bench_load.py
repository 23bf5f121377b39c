"""Classified requests per second per core vs Locust's own HttpUser, side by side.

Run: python -m benchmarks.bench_load [--seconds 10] [--users 20]
Both runs use one Locust process against the same trivial aiohttp endpoint on
127.0.0.1 (served from its own process); the ratio is what matters, as
absolute numbers move with the machine's load. Target: >= 1,500 classified
requests/s per core and a ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load

HERE = Path(__file__).resolve().parent
SERVER = """
from aiohttp import web
async def ok(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/", ok)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None,
            access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the bench server did not start")


def classified_rps(url: str, users: int, seconds: float, folder: Path) -> float:
    load = Load(target="bench", users=users, spawn_rate=users, wait=0,
                requests=[{"name": "root", "path": "/"}])
    proc = LocustProcess(load, url, folder, seconds + 30)
    proc.start()
    proc.wait_for_traffic(20)
    proc.set_phase("measure")
    started = time.time()
    time.sleep(seconds)
    proc.set_phase("done")
    ended = time.time()
    proc.stop()
    count = 0
    with open(proc.records) as handle:
        for line in handle:
            if '"phase":"measure"' in line:
                count += 1
    return count / (ended - started)


def plain_rps(url: str, users: int, seconds: float, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "plain"
    cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "plain_locustfile.py"), "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "-H", url,
           "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"]
    subprocess.run(cmd, capture_output=True, timeout=seconds + 60, check=False)
    with open(f"{prefix}_stats.csv") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise RuntimeError("no Locust stats")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians shown")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    folder = Path(tempfile.mkdtemp(prefix="chaos-bench-"))
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        plains, classifieds = [], []
        for i in range(args.rounds):  # alternate, so machine noise hits both alike
            plains.append(plain_rps(url, args.users, args.seconds, folder / f"p{i}"))
            classifieds.append(classified_rps(url, args.users, args.seconds, folder / f"c{i}"))
        plain, classified = statistics.median(plains), statistics.median(classifieds)
    finally:
        server.terminate()
        server.wait(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)
    ratio = classified / plain if plain else 0.0
    load = os.getloadavg()[0]
    print(f"load generator: 1 Locust process, {args.users} users, {args.seconds:g}s x "
          f"{args.rounds} alternating rounds, medians "
          f"(load average {load:.1f})")
    print(f"{'measure':<40} {'req/s':>8}  target")
    print(f"{'Locust HttpUser, no classification':<40} {plain:8.0f}")
    print(f"{'gateway-chaos classified (NDJSON)':<40} {classified:8.0f}  >= 1500 per core "
          f"{'PASS' if classified >= 1500 else 'MISS'}")
    print(f"{'ratio classified / plain':<40} {ratio:8.2f}  >= 0.90 "
          f"{'PASS' if ratio >= 0.9 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
