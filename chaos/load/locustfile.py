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

Streaming requests (`stream: true`, an `llm:` item that streams, or a JSON body asking for
a stream) are read as they arrive (send_streaming, chaos.load.sse): the record gets the time
to the first token, the gaps between tokens, the tokens, finish_reason and whether the
terminator came, and Locust's request event fires once, at the end, with the whole
stream's time. `llm:` items get a fresh chat body per request (chaos.load.llm_bodies); every
record keeps the response's Retry-After.

With load.tls the target is https: every session verifies it against the run's CA alone,
by its service name (SNI and the host name check), and a request that opened a connection
records its handshake's time ("tls_ms", chaos.load.tls); a refused handshake is
tls_handshake_failed with the reason, a reset or close during one says so in its detail.

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
from urllib3 import PoolManager

from chaos.load import connections, tls
from chaos.load.classify import (
    classify_exception,
    classify_response,
    classify_stream,
    classify_stream_failure,
    in_handshake,
)
from chaos.load.llm_bodies import body_for
from chaos.load.records import RecordWriter
from chaos.load.request_ids import RequestIds, header_int
from chaos.load.sse import EventReader, StreamStats, answer_fields

connections.install()
tls.install()

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
    context = context or {}
    status = int(getattr(response, "status_code", 0) or 0)
    error = getattr(response, "error", None) or exception
    stats: StreamStats | None = context.get("stats")
    llm: dict[str, Any] = {}
    if stats is not None:  # read incrementally (send_streaming): outcome and body known
        outcome, detail = context["outcome"]
        llm.update(stats.fields())
    elif status > 0:
        body = response.content or b""
        outcome, detail = classify_response(status, response.headers, body, RETRY_HEADER)
        if context.get("chat") and b"{" in body[:1]:
            answer = answer_fields(body)
            llm.update((k, answer[k]) for k in ("tokens", "finish_reason") if k in answer)
    else:
        outcome, detail = classify_exception(error) if error else ("other", "no response")
    handshake = tls.take()  # None: plain HTTP, or a connection reused without a handshake
    outcome, detail = in_handshake(outcome, detail, error if status == 0 else None, handshake)
    for key in ("prompt_tokens", "max_tokens"):
        if context.get(key) is not None:
            llm[key] = context[key]
    headers = response.headers if status > 0 else context.get("headers")
    llm["retry_after"] = retry_after(headers)
    PENDING.append({
        "t": round(started, 4), "name": name, "status": status,
        "latency_ms": round(response_time, 2), "bytes": response_length or 0,
        "outcome": outcome, "detail": detail, "conn": connections.take(),
        "sched": SCHEDULED.pop(getcurrent(), None), "rid": (context or {}).get("rid"),
        "method": request_type,
        "hdr_retries": header_int(headers, RETRY_HEADER) if headers is not None else None,
        "llm": llm, **({"tls_ms": round(handshake.ms, 2)} if handshake is not None else {}),
    })


def retry_after(headers: Any) -> str | None:
    """The response's Retry-After as sent, else retry-after-ms as "<N>ms", else None."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is not None:
        return str(value).strip()[:64]
    value = headers.get("retry-after-ms")
    return None if value is None else f"{str(value).strip()[:60]}ms"


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
# load.tls: {"ca": the run's CA bundle, "server_hostname": the name the target's certificate
# is for (the load goes to its container address, which no certificate names)}
TLS: dict[str, str] | None = CONFIG.get("tls")
PER_CONNECTION = int(CONFIG.get("requests_per_connection") or 0)


def _pools() -> PoolManager | None:
    """A session's own connection pools: with TLS, ones that verify the target by its
    service name (SNI and the host name check); without, requests' default adapter pools."""
    if not TLS:
        return None
    return PoolManager(num_pools=4, maxsize=1, server_hostname=TLS["server_hostname"])
RNG = random.Random()


def send(client: Any) -> None:
    """One request of the weighted mix (counted in flight while it runs)."""
    spec = random.choice(REQUESTS)
    headers = dict(spec.get("headers") or {})
    if spec.get("idempotent"):
        headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
    llm_spec = spec.get("llm")
    context: dict[str, Any] = {"stream": bool(spec.get("stream"))}
    payload = spec.get("json")
    if llm_spec:
        payload, context["prompt_tokens"], context["max_tokens"] = body_for(llm_spec, RNG)
        context["stream"] = context["stream"] or bool(llm_spec.get("stream"))
    context["chat"] = bool(llm_spec) or (isinstance(payload, dict) and "messages" in payload)
    # read as it arrives: `stream: true` (which also requires the SSE terminator), an llm
    # item that streams, or a JSON body asking for a stream
    streaming = context["stream"] or (isinstance(payload, dict) and payload.get("stream") is True)
    rid, body = REQUEST_IDS.stamp(headers, payload)
    context["rid"] = rid
    kwargs: dict[str, Any] = {
        "name": spec["name"], "headers": headers,
        "timeout": (CONFIG["connect_timeout"], CONFIG["timeout"]), "context": context,
    }
    if TLS:
        kwargs["verify"] = TLS["ca"]  # the run's CA alone
    if PER_CONNECTION:  # load.requests_per_connection: the client churns its connections
        sent = getattr(client, "_chaos_sent", 0) + 1
        client._chaos_sent = sent
        if sent % PER_CONNECTION == 0:
            headers["Connection"] = "close"
    if body is not None:
        kwargs["json"] = body
    if QUITTING:
        gevent.sleep(0.05)  # a closed-loop user must not spin while Locust shuts down
        return
    COUNTS["in_flight"] += 1
    try:
        if streaming:
            send_streaming(client, spec["method"], spec["path"], kwargs)
        else:
            client.request(spec["method"], spec["path"], **kwargs)
    finally:
        COUNTS["in_flight"] -= 1


def send_streaming(client: HttpSession, method: str, path: str, kwargs: dict[str, Any]) -> None:
    """A streaming request read as it arrives: each SSE event is timed (time to the first
    token, the gaps between tokens) and the request is classified at its end. Locust's
    request event fires once, at the end, with the whole request's time, as for any other
    request (HttpSession.request would fire it when the headers came)."""
    name, context = kwargs.pop("name"), kwargs.pop("context")
    stats = StreamStats(time.perf_counter())
    start_time, started = time.time(), stats.started
    response: Any = None
    error: BaseException | None = None
    size = 0
    try:
        # requests.Session.request itself: HttpSession's own would report at the headers
        client.explicit_name = name  # what HttpSession.prepare_request reads
        response = super(HttpSession, client).request(
            method, client._build_url(path), stream=True, **kwargs)
        context["headers"] = response.headers
        kind = (response.headers.get("content-type") or "").lower()
        if 200 <= response.status_code < 300 and kind.startswith("text/event-stream"):
            reader = EventReader()
            for chunk in _chunks(response):
                size += len(chunk)
                now = time.perf_counter()
                for event in reader.feed(chunk):
                    stats.add(event, now)
            for event in reader.close():  # a last event without its blank line
                stats.add(event, final=True)
            context["outcome"] = classify_stream(response.status_code, response.headers, stats,
                                                 RETRY_HEADER)
        else:  # an error answer, or JSON to a streaming request: classified as a whole
            body = b"".join(_chunks(response))
            size = len(body)
            outcome = classify_response(response.status_code, response.headers, body,
                                        RETRY_HEADER)
            if context.get("stream") and outcome[0] == "ok" and b"data: [DONE]" not in body:
                outcome = ("truncated", "a streaming request got no SSE terminator")
            context["outcome"] = outcome
            answer = answer_fields(body) if body[:1] == b"{" else {}
            stats.tokens = answer.get("tokens") or 0
            stats.finish_reason = answer.get("finish_reason")
    except Exception as exc:  # noqa: BLE001 - every failure is a classified outcome
        error = exc
        context["outcome"] = classify_stream_failure(exc, stats)
    finally:
        if response is not None:
            response.close()
    context["stats"] = stats
    elapsed = (time.perf_counter() - started) * 1000
    client.request_event.fire(
        request_type=method, name=name, response_time=elapsed, response_length=size,
        response=response if error is None else None, exception=error, context=context,
        start_time=start_time, url=path)


def _chunks(response: Any) -> Any:
    """The body as it arrives: each HTTP chunk of a chunked body (requests' iter_content,
    whose exceptions are the ones a whole-body read raises), else what each read returns."""
    if response.raw.chunked:
        yield from response.iter_content(chunk_size=None)
        return
    while True:
        data = response.raw.read1(65536)
        if not data:
            return
        yield data


class ChaosUser(HttpUser):
    """Closed-loop: one simulated client. Open-loop: one arrival scheduler (see the module
    docstring). Bounded by Locust's -t either way."""

    wait_time = _wait_time()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pool_manager = _pools()  # before HttpUser makes self.client with it
        super().__init__(*args, **kwargs)

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
                           user=self, pool_manager=_pools())

    @staticmethod
    def _arrive(session: HttpSession, scheduled: float, idle: list[HttpSession]) -> None:
        SCHEDULED[getcurrent()] = scheduled
        try:
            send(session)
        finally:
            SCHEDULED.pop(getcurrent(), None)
            idle.append(session)
