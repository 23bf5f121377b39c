"""The locustfile the harness runs as a subprocess (never imported by the harness).

Every request becomes one NDJSON record with its outcome class and the phase the
engine announced (the phase file holds "<epoch>\t<phase>" lines; a request
belongs to the phase in which it ended).

Records are written (chaos.load.records) by whichever process can see the run folder:
a local runner and local `--processes` workers append to the records file directly (one
O_APPEND write per flush, so lines never interleave); workers on other machines
(CHAOS_RECORDS_MODE=forward) attach their records to Locust's worker reports and
the master writes them.

Each record also names the TCP connection the request used ("conn": [local ip, local
port, remote ip, remote port], see chaos.load.connections), so that the evidence can show
a failed request with the packets of exactly its connection. With load.request_id each
request carries a fresh id (chaos.load.request_ids) in a header, and optionally in its
JSON body; the record keeps it ("rid"), with the method and, when the response carried
load.retry_header as an integer, the gateway's own retry count ("hdr_retries").

Arrivals (chaos.load.arrivals): with a rate and `arrival: open`, each Locust user is a
scheduler that starts one request greenlet per arrival at fixed times, bounded by a pool
of at most its share of `max_in_flight` requests in flight; an arrival that finds the pool full is
dropped and written to the dropped file. Open-loop records carry their scheduled time
("sched"). Every process rewrites a small status file (requests in flight, dropped so
far) for the console's live line.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any

import gevent
from gevent.pool import Group
from greenlet import getcurrent
from locust import HttpUser, constant, constant_throughput, events, task
from locust.clients import HttpSession
from locust.user.task import LOCUST_STATE_STOPPING

from chaos.load import connections
from chaos.load.classify import classify_exception, classify_response
from chaos.load.records import RecordWriter
from chaos.load.request_ids import RequestIds, header_int

connections.install()

with open(os.environ["CHAOS_LOAD_CONFIG"]) as _config:
    CONFIG: dict[str, Any] = json.load(_config)
RETRY_HEADER: str = CONFIG["retry_header"]
REQUEST_IDS = RequestIds(CONFIG.get("request_id"))
FORWARD = os.environ.get("CHAOS_RECORDS_MODE", "write") == "forward"
RECORDS = RecordWriter(CONFIG, FORWARD)
PENDING = RECORDS.pending
OPEN = CONFIG.get("arrival") == "open" and bool(CONFIG.get("rate"))
DROPPED = RECORDS.dropped  # scheduled times of dropped arrivals, not yet written
SCHEDULED: dict[Any, float] = {}  # request greenlet -> scheduled time of its arrival
COUNTS = RECORDS.counts
QUITTING: list[bool] = []  # set when Locust quits: no new requests, let in-flight ones land
DRAIN_S = 2.0
flush = RECORDS.flush
flush_dropped = RECORDS.flush_dropped
write_status = RECORDS.write_status
phase_at = RECORDS.phase_at


def _background() -> None:
    beat = 0
    while True:
        flush()
        flush_dropped()
        if beat % 5 == 0:
            write_status()
        beat += 1
        gevent.sleep(0.05)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    gevent.spawn(_background)


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if FORWARD:
        data["chaos_records"] = list(PENDING)
        PENDING.clear()
        data["chaos_dropped"] = list(DROPPED)
        DROPPED.clear()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    PENDING.extend(data.get("chaos_records", []))
    DROPPED.extend(data.get("chaos_dropped", []))


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    """Locust fires quitting before it stops the users: stop starting requests and give
    those in flight a moment to end, so the run's last requests reach the records."""
    QUITTING.append(True)
    deadline = time.time() + DRAIN_S
    while COUNTS["in_flight"] > 0 and time.time() < deadline:
        gevent.sleep(0.01)
    flush()
    flush_dropped()


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                response: Any = None, exception: BaseException | None = None,
                start_time: float | None = None, context: dict[str, Any] | None = None,
                **_: Any) -> None:
    started = start_time if start_time is not None else time.time() - response_time / 1000
    status = int(getattr(response, "status_code", 0) or 0)
    error = getattr(response, "error", None) or exception
    if status > 0:
        outcome, detail = classify_response(status, response.headers, response.content or b"",
                                            RETRY_HEADER)
        if (context or {}).get("stream") and outcome == "ok" and b"data: [DONE]" not in (
                response.content or b""):
            outcome, detail = "truncated", "a streaming request got no SSE terminator"
    else:
        outcome, detail = classify_exception(error) if error else ("other", "no response")
    PENDING.append({
        "t": round(started, 4), "name": name, "status": status,
        "latency_ms": round(response_time, 2), "bytes": response_length or 0,
        "outcome": outcome, "detail": detail, "conn": connections.take(),
        "sched": SCHEDULED.pop(getcurrent(), None), "rid": (context or {}).get("rid"),
        "method": request_type,
        "hdr_retries": header_int(response.headers, RETRY_HEADER) if status > 0 else None,
    })


def _weighted_requests() -> list[dict[str, Any]]:
    pool: list[dict[str, Any]] = []
    for spec in CONFIG["requests"]:
        pool.extend([spec] * int(spec.get("weight", 1)))
    return pool


def _wait_time() -> Any:
    rate = CONFIG.get("rate")
    if rate and not OPEN:  # closed-loop: each user aims at its share of the rate
        return constant_throughput(float(rate) / max(int(CONFIG.get("users", 1)), 1))
    return constant(0.0 if OPEN else float(CONFIG.get("wait", 0.0)))


REQUESTS = _weighted_requests()


def send(client: Any) -> None:
    """One request of the weighted mix (counted in flight while it runs)."""
    spec = random.choice(REQUESTS)
    headers = dict(spec.get("headers") or {})
    if spec.get("idempotent"):
        headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
    rid, body = REQUEST_IDS.stamp(headers, spec.get("json"))
    kwargs: dict[str, Any] = {
        "name": spec["name"], "headers": headers,
        "timeout": (CONFIG["connect_timeout"], CONFIG["timeout"]),
        "context": {"stream": bool(spec.get("stream")), "rid": rid},
    }
    if body is not None:
        kwargs["json"] = body
    if QUITTING:
        gevent.sleep(0.05)  # a closed-loop user must not spin while Locust shuts down
        return
    COUNTS["in_flight"] += 1
    try:
        client.request(spec["method"], spec["path"], **kwargs)
    finally:
        COUNTS["in_flight"] -= 1


class ChaosUser(HttpUser):
    """Closed-loop: one simulated client. Open-loop: one arrival scheduler (see the module
    docstring). Bounded by Locust's -t either way."""

    wait_time = _wait_time()

    @task
    def call(self) -> None:
        if OPEN:
            self._schedule_arrivals()
        else:
            send(self.client)

    def _schedule_arrivals(self) -> None:
        """Arrivals at fixed times (a late wake-up starts the overdue ones at once); each
        takes an idle session of the pool, or is dropped when all are busy."""
        share = max(int(CONFIG.get("schedulers", 1)), 1)
        interval = share / float(CONFIG["rate"])
        size = max(1, -(-int(CONFIG.get("pool", 1)) // share))
        idle: list[HttpSession] = []
        made = 0
        group = Group()
        due = time.time() + (random.random() * interval if share > 1 else 0.0)
        try:
            while self._state != LOCUST_STATE_STOPPING and not QUITTING:
                delay = due - time.time()
                if delay > 0:
                    gevent.sleep(delay)
                if idle or made < size:
                    if not idle:
                        made += 1
                        idle.append(self._session())
                    group.spawn(self._arrive, idle.pop(), round(due, 4), idle)
                else:
                    DROPPED.append(round(due, 4))
                    COUNTS["dropped"] += 1
                due += interval
            group.join(timeout=DRAIN_S)  # asked to stop: the arrivals in flight may end
            gevent.sleep(0.05)  # quitting: Locust calls the task again until it stops us
        finally:
            group.kill(block=False)

    def _session(self) -> HttpSession:
        return HttpSession(base_url=self.host, request_event=self.environment.events.request,
                           user=self, pool_manager=self.pool_manager)

    @staticmethod
    def _arrive(session: HttpSession, scheduled: float, idle: list[HttpSession]) -> None:
        SCHEDULED[getcurrent()] = scheduled
        try:
            send(session)
        finally:
            SCHEDULED.pop(getcurrent(), None)
            idle.append(session)
