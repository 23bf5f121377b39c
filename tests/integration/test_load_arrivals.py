"""Open-loop arrivals hold their rate whatever the responses do; closed-loop ones fall.

Real Locust processes against a loopback server whose every response takes three
inter-arrival times (20 arrivals/s, 150 ms per response), measured over 3 s. The same
load (`users: 2, rate: 20`) holds open-loop and falls to about 10/s closed-loop (two users
waiting 150 ms each); a pool capped at 2 in flight drops and counts the rest.
"""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.load.arrivals import count_arrivals, in_flight
from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load
from chaos.verdict.result import PhaseWindow
from tests.fixtures.loopback import http_server

RATE = 20.0
RESPONSE_S = 3 / RATE
MEASURE_S = 3.0
LIVE: dict[Path, tuple[int, int] | None] = {}


class SlowHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(RESPONSE_S)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    for address in http_server(SlowHandler):
        yield f"http://{address}"


def measure(server: str, tmp_path: Path, tail: float = RESPONSE_S + 0.3,
            **load: object) -> tuple[int, int, list[dict]]:
    """(arrivals started, arrivals dropped) in a 3 s window, and its records."""
    spec = Load(target="t", rate=RATE, requests=[{"name": "slow", "path": "/"}], **load)
    proc = LocustProcess(spec, server, tmp_path, 20)
    proc.start()
    try:
        assert proc.wait_for_traffic(20), proc.log_tail()
        time.sleep(0.5)  # past the first second: closed-loop users are all spawned
        t0 = time.time()
        proc.set_phase("measure", t0)
        time.sleep(MEASURE_S / 2)
        LIVE[tmp_path] = in_flight(tmp_path)  # what the console's live line reads
        time.sleep(MEASURE_S / 2)
        proc.set_phase("after")
        time.sleep(tail)  # the last arrivals' records land
    finally:
        proc.stop()
    [phase] = count_arrivals(proc.records, t0, [PhaseWindow("measure", 0.0, MEASURE_S)], RATE)
    rows = [json.loads(line) for line in proc.records.read_text().splitlines()]
    return phase.started, phase.dropped, rows


def test_open_loop_arrivals_hold_the_rate_when_responses_are_slow(
        slow_server: str, tmp_path: Path) -> None:
    started, dropped, rows = measure(slow_server, tmp_path, users=2)
    wanted = RATE * MEASURE_S
    assert abs(started - wanted) <= 0.03 * wanted + 1, (started, wanted)
    assert dropped == 0
    assert all("sched" in r and r["t"] >= r["sched"] - 0.01 for r in rows)
    late = sorted(r["t"] - r["sched"] for r in rows)
    assert late[len(late) // 2] < 0.02, "arrivals start on their scheduled time"
    live = LIVE[tmp_path]
    assert live is not None and 1 <= live[0] <= 5 and live[1] == 0, live  # about 3 in flight


def test_closed_loop_arrivals_fall_when_responses_are_slow(
        slow_server: str, tmp_path: Path) -> None:
    started, dropped, rows = measure(slow_server, tmp_path, users=2, arrival="closed")
    # each of 2 users waits for its 150 ms response: about 10 of the 20 arrivals/s asked for
    assert started < 0.8 * RATE * MEASURE_S, started
    assert dropped == 0 and not any("sched" in r for r in rows)


def test_a_saturated_open_loop_pool_drops_and_counts_arrivals(
        slow_server: str, tmp_path: Path) -> None:
    started, dropped, _ = measure(slow_server, tmp_path, users=2, max_in_flight=2)
    # a pool of 2 serves 2 / 150 ms = 13.3/s; the rest of the 20/s is dropped
    assert started < 0.8 * RATE * MEASURE_S and dropped > 0.2 * RATE * MEASURE_S
    assert abs(started + dropped - RATE * MEASURE_S) <= 0.03 * RATE * MEASURE_S + 1
    live = LIVE[tmp_path]
    assert live is not None and live[0] <= 2 and live[1] > 0, live


def test_requests_in_flight_when_locust_stops_still_reach_the_records(
        slow_server: str, tmp_path: Path) -> None:
    """Locust fires quitting before it stops its users: the locustfile lets the requests in
    flight end first, so a phase ending at the stop keeps its last arrivals."""
    started, dropped, _ = measure(slow_server, tmp_path, tail=0.0, users=2)
    assert abs(started - RATE * MEASURE_S) <= 1 and dropped == 0, started
