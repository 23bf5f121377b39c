"""The locustfile the harness runs as a subprocess (never imported by the harness).

Every request becomes one NDJSON record with its outcome class and the phase the
engine announced (the phase file holds "<epoch>\t<phase>" lines; a request
belongs to the phase in which it ended).

Records are written by whichever process can see the run folder: a local runner
and local `--processes` workers append to the records file directly (one
O_APPEND write per flush, so lines never interleave); workers on other machines
(CHAOS_RECORDS_MODE=forward) attach their records to Locust's worker reports and
the master writes them.

Each record also names the TCP connection the request used ("conn": [local ip, local
port, remote ip, remote port], see chaos.load.connections), so that the evidence can show
a failed request with the packets of exactly its connection.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import time
import uuid
from typing import Any

import gevent
from locust import HttpUser, constant, constant_throughput, events, task

from chaos.load import connections
from chaos.load.classify import classify_exception, classify_response

connections.install()

with open(os.environ["CHAOS_LOAD_CONFIG"]) as _config:
    CONFIG: dict[str, Any] = json.load(_config)
RETRY_HEADER: str = CONFIG["retry_header"]
FORWARD = os.environ.get("CHAOS_RECORDS_MODE", "write") == "forward"
PHASE_STARTS: list[float] = []
PHASE_NAMES: list[str] = []
PENDING: list[dict[str, Any]] = []
_FD: int | None = None


def _records_fd() -> int:
    global _FD
    if _FD is None:
        _FD = os.open(CONFIG["records"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _FD


def _read_phases() -> None:
    try:
        with open(CONFIG["phase_file"]) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return
    for line in lines[len(PHASE_STARTS):]:
        stamp, _, name = line.partition("\t")
        if name:
            PHASE_STARTS.append(float(stamp))
            PHASE_NAMES.append(name)


def phase_at(moment: float) -> str:
    index = bisect.bisect_right(PHASE_STARTS, moment) - 1
    return PHASE_NAMES[index] if index >= 0 else "warmup"


def flush() -> None:
    """Assign phases (now that the phase file is fresh) and append in one write."""
    if FORWARD or not PENDING:
        return
    _read_phases()
    dumps = json.dumps
    lines = [
        f'{{"t":{r["t"]},"phase":{dumps(phase_at(r["t"] + r["latency_ms"] / 1000.0))},'
        f'"name":{dumps(r["name"])},"status":{r["status"]},"latency_ms":{r["latency_ms"]},'
        f'"bytes":{r["bytes"]},"outcome":"{r["outcome"]}","detail":{dumps(r["detail"])}'
        f'{_conn_field(r.get("conn"))}}}'
        for r in PENDING
    ]
    PENDING.clear()
    os.write(_records_fd(), ("\n".join(lines) + "\n").encode())


def _conn_field(conn: Any) -> str:
    if not conn:
        return ""
    local = "null" if conn[0] is None else f'"{conn[0]}"'
    return f',"conn":[{local},{int(conn[1])},"{conn[2]}",{int(conn[3])}]'


def _background() -> None:
    while True:
        flush()
        gevent.sleep(0.05)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    gevent.spawn(_background)


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if FORWARD:
        data["chaos_records"] = list(PENDING)
        PENDING.clear()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    PENDING.extend(data.get("chaos_records", []))


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    flush()


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
    })


def _weighted_requests() -> list[dict[str, Any]]:
    pool: list[dict[str, Any]] = []
    for spec in CONFIG["requests"]:
        pool.extend([spec] * int(spec.get("weight", 1)))
    return pool


def _wait_time() -> Any:
    rate = CONFIG.get("rate")
    if rate:
        return constant_throughput(float(rate) / max(int(CONFIG.get("users", 1)), 1))
    return constant(float(CONFIG.get("wait", 0.0)))


class ChaosUser(HttpUser):
    """One simulated client: picks a request by weight; bounded by Locust's -t."""

    wait_time = _wait_time()
    requests_pool = _weighted_requests()

    @task
    def call(self) -> None:
        spec = random.choice(self.requests_pool)
        headers = dict(spec.get("headers") or {})
        if spec.get("idempotent"):
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        kwargs: dict[str, Any] = {
            "name": spec["name"], "headers": headers,
            "timeout": (CONFIG["connect_timeout"], CONFIG["timeout"]),
            "context": {"stream": bool(spec.get("stream"))},
        }
        if spec.get("json") is not None:
            kwargs["json"] = spec["json"]
        self.client.request(spec["method"], spec["path"], **kwargs)
