"""The locustfile the harness runs as a subprocess (never imported by the harness).

Every request becomes one NDJSON record with its outcome class and the phase
the engine announced (the phase file holds "<epoch>\t<phase>" lines).
"""

from __future__ import annotations

import bisect
import json
import os
import random
import time
from typing import Any

import gevent
from locust import HttpUser, constant, events, task

from chaos.load.classify import classify_exception, classify_response

with open(os.environ["CHAOS_LOAD_CONFIG"]) as _config:
    CONFIG: dict[str, Any] = json.load(_config)
RETRY_HEADER: str = CONFIG["retry_header"]
PHASE_STARTS: list[float] = []
PHASE_NAMES: list[str] = []
_BUFFER: list[str] = []
_RECORDS = open(CONFIG["records"], "a", buffering=1 << 16)  # noqa: SIM115 - open for the run


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


def _flush() -> None:
    if _BUFFER:
        _RECORDS.write("".join(_BUFFER))
        _BUFFER.clear()
        _RECORDS.flush()


def _background() -> None:
    while True:
        _read_phases()
        _flush()
        gevent.sleep(0.05)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    gevent.spawn(_background)


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    _read_phases()
    _flush()
    _RECORDS.close()


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                response: Any = None, exception: BaseException | None = None,
                start_time: float | None = None, **_: Any) -> None:
    started = start_time if start_time is not None else time.time() - response_time / 1000
    status = int(getattr(response, "status_code", 0) or 0)
    error = getattr(response, "error", None) or exception
    if status > 0:
        outcome, detail = classify_response(status, response.headers, response.content or b"",
                                            RETRY_HEADER)
    else:
        outcome, detail = classify_exception(error) if error else ("other", "no response")
    record = {
        "t": round(started, 4), "phase": phase_at(started + response_time / 1000.0), "name": name,
        "status": status, "latency_ms": round(response_time, 2),
        "bytes": response_length or 0, "outcome": outcome, "detail": detail,
    }
    _BUFFER.append(json.dumps(record, separators=(",", ":")) + "\n")


def _weighted_requests() -> list[dict[str, Any]]:
    pool: list[dict[str, Any]] = []
    for spec in CONFIG["requests"]:
        pool.extend([spec] * int(spec.get("weight", 1)))
    return pool


class ChaosUser(HttpUser):
    """One simulated client: picks a request by weight, bounded by Locust's -t."""

    wait_time = constant(float(CONFIG.get("wait", 0.0)))
    requests_pool = _weighted_requests()

    @task
    def call(self) -> None:
        spec = random.choice(self.requests_pool)
        kwargs: dict[str, Any] = {
            "name": spec["name"], "headers": spec.get("headers") or {},
            "timeout": (CONFIG["connect_timeout"], CONFIG["timeout"]),
        }
        if spec.get("json") is not None:
            kwargs["json"] = spec["json"]
        self.client.request(spec["method"], spec["path"], **kwargs)
