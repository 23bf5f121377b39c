"""Black-box tests of the reference backend and gateway, run as real processes on loopback.

No Docker: each app is started with the venv's python on a free 127.0.0.1 port and checked
with `requests`, the same kind of client the load generator uses, so a reset or a 5xx here
is what a scenario would see. A tiny scripted socket server plays the flaky upstream,
because only a raw socket can send an RST at exactly the right moment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests

from chaos.runtime.paths import shared_modules
from chaos.stack.processes import AppProcess, launch
from tests.fixtures.loopback import free_port

REPO = Path(__file__).resolve().parents[2]
BACKEND_APP = REPO / "docker" / "backend" / "app.py"
GATEWAY_APP = REPO / "docker" / "gateway" / "app.py"
LOOPBACK = "127.0.0.1"
HTTP_TIMEOUT_S = 5.0


# ---------------------------------------------------------------- process helpers


Service = AppProcess


def start_service(script: Path, log_dir: Path, port: int | None = None,
                  **env: str) -> Service:
    port = port or free_port()
    service = launch(script, port, log_dir / f"{script.parent.name}-{port}.log", env)
    if not service.healthy():
        service.stop()
        raise AssertionError(f"service did not become healthy; log:\n{service.log()}")
    return service


Starter = Callable[..., Service]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    """Start services for one test; all of them are stopped even if the test fails."""
    started: list[Service] = []

    def _start(script: Path, port: int | None = None, **env: str) -> Service:
        service = start_service(script, tmp_path, port, **env)
        started.append(service)
        return service

    yield _start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(BACKEND_APP, tmp_path_factory.mktemp("backend"),
                            STREAM_CHUNK_DELAY_MS="5")
    yield service
    service.stop()


def start_gateway(start: Starter, upstream_port: int, **env: str) -> Service:
    return start(GATEWAY_APP, UPSTREAM_URL=f"http://{LOOPBACK}:{upstream_port}", **env)


def metric(gateway: Service, name: str) -> float:
    """Value of one sample line (name including labels) from the gateway's /metrics."""
    text = requests.get(f"{gateway.url}/metrics", timeout=HTTP_TIMEOUT_S).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def sse_data(response: requests.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines(decode_unicode=True)
            if line and line.startswith("data: ")]


def caused_by_reset(exc: BaseException) -> bool:
    """True if a ConnectionResetError (RemoteDisconnected is one) is in the cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionResetError) or any(
            isinstance(arg, ConnectionResetError) for arg in getattr(seen, "args", ())
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Connection reset" in str(exc) or "RemoteDisconnected" in str(exc)


# ---------------------------------------------------------------- scripted upstream


class ScriptedUpstream:
    """An HTTP/1.1 server on loopback whose N-th connection does what the script says.

    Actions: "reset" (read the request, then RST), "ok" (200 JSON, Connection: close),
    "sse_then_reset" / "body_then_reset" (headers and part of a body, then RST).
    Connections past the end of the script get "ok".
    """

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.connections = 0
        self._server = socket.create_server((LOOPBACK, 0))
        self._server.settimeout(0.1)
        self.port = int(self._server.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._server.close()

    def arm(self, script: list[str]) -> None:
        with self._lock:
            self.script = list(script)
            self.connections = 0

    def _next_action(self) -> str:
        with self._lock:
            self.connections += 1
            return self.script.pop(0) if self.script else "ok"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            _read_request_head(conn)
            action = self._next_action()
            if action == "reset":
                _rst(conn)
            elif action == "sse_then_reset":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n"
                             + _chunk(b'data: {"n": 1}\n\n'))
                time.sleep(0.2)
                _rst(conn)
            elif action == "body_then_reset":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: 1000\r\n\r\n" + b"a" * 100)
                time.sleep(0.2)
                _rst(conn)
            else:
                body = b'{"ok": true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                             + body)


def _read_request_head(conn: socket.socket) -> None:
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk


def _rst(conn: socket.socket) -> None:
    """Close with SO_LINGER {1,0}: the kernel sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---------------------------------------------------------------- backend


def test_backend_rest_endpoints_and_stats(backend: Service) -> None:
    requests.delete(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S)
    item = requests.get(f"{backend.url}/api/items/7?size=300", timeout=HTTP_TIMEOUT_S)
    assert item.status_code == 200
    assert item.json()["id"] == "7" and len(item.json()["filler"]) == 300
    assert requests.get(f"{backend.url}/api/items", timeout=HTTP_TIMEOUT_S).json()["count"] > 0

    started = time.monotonic()
    requests.get(f"{backend.url}/api/items/1?delay_ms=200", timeout=HTTP_TIMEOUT_S)
    assert time.monotonic() - started >= 0.2

    limited = requests.get(f"{backend.url}/ratelimited", timeout=HTTP_TIMEOUT_S)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json()["error"]["type"]

    stats = requests.get(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S).json()
    assert stats["requests"]["/api/items/7"] == 1 and stats["requests"]["/api/items/1"] == 1
    assert "GET /api/items/7 200" in backend.log()


def test_backend_chat_completion_json_and_stream(backend: Service) -> None:
    url = f"{backend.url}/v1/chat/completions"
    messages = [{"role": "user", "content": "say hi"}]
    reply = requests.post(url, json={"model": "m", "messages": messages, "max_tokens": 4},
                          timeout=HTTP_TIMEOUT_S)
    body = reply.json()
    assert body["object"] == "chat.completion" and body["model"] == "m"
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 4

    with requests.post(url, json={"messages": messages, "stream": True, "max_tokens": 5},
                       stream=True, timeout=HTTP_TIMEOUT_S) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = sse_data(stream)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len(chunks) == 5 + 2  # role chunk, one per token, finish chunk


# ---------------------------------------------------------------- gateway: happy path


def test_gateway_forwards_requests_and_streams(backend: Service, start: Starter) -> None:
    gateway = start_gateway(start, backend.port)
    requests.delete(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S)

    item = requests.get(f"{gateway.url}/api/items/42?size=10", timeout=HTTP_TIMEOUT_S)
    assert item.status_code == 200 and item.json()["filler"] == "x" * 10
    assert "X-Gateway-Retries" not in item.headers

    chat = requests.post(f"{gateway.url}/v1/chat/completions",
                         json={"messages": [], "stream": True, "max_tokens": 3},
                         stream=True, timeout=HTTP_TIMEOUT_S)
    assert sse_data(chat)[-1] == "[DONE]"

    limited = requests.get(f"{gateway.url}/ratelimited", timeout=HTTP_TIMEOUT_S)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"

    stats = requests.get(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S).json()["requests"]
    assert stats["/api/items/42"] == 1 and stats["/v1/chat/completions"] == 1
    assert metric(gateway, 'gateway_requests_total{code="200"}') == 2
    assert metric(gateway, "gateway_breaker_state") == 0
    assert "GET /api/items/42 200" in gateway.log()


def test_gateway_rejects_oversized_body_with_413(backend: Service, start: Starter) -> None:
    gateway = start_gateway(start, backend.port, GATEWAY_MAX_BODY_BYTES="1000")
    too_big = requests.post(f"{gateway.url}/v1/chat/completions", data=b"x" * 5000,
                            timeout=HTTP_TIMEOUT_S)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "payload_too_large"


# ---------------------------------------------------------------- gateway: failures


def test_gateway_answers_502_json_when_upstream_is_down(start: Starter) -> None:
    gateway = start_gateway(start, free_port())
    started = time.monotonic()
    reply = requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    assert time.monotonic() - started < 1.5
    assert reply.status_code == 502
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json()["error"]["type"] == "bad_gateway"


def test_gateway_answers_504_when_upstream_is_slower_than_try_timeout(
    backend: Service, start: Starter
) -> None:
    gateway = start_gateway(start, backend.port, GATEWAY_TRY_TIMEOUT_MS="400",
                            GATEWAY_TOTAL_TIMEOUT_MS="1000", GATEWAY_MAX_TRIES="6",
                            GATEWAY_BREAKER="off")
    started = time.monotonic()
    reply = requests.get(f"{gateway.url}/api/items/1?delay_ms=3000", timeout=HTTP_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert reply.status_code == 504
    assert reply.json()["error"]["type"] == "gateway_timeout"
    # 6 tries x 400 ms would take 2.4 s: the 1 s total budget must cut the retries short.
    assert 0.4 <= elapsed < 1.8
    assert int(reply.headers["X-Gateway-Retries"]) >= 1


def test_breaker_opens_after_failures_and_closes_when_upstream_returns(
    start: Starter,
) -> None:
    upstream_port = free_port()
    gateway = start_gateway(start, upstream_port, GATEWAY_BREAKER_FAILURES="3",
                            GATEWAY_BREAKER_OPEN_MS="700", GATEWAY_RETRIES="off")
    for _ in range(3):
        assert requests.get(f"{gateway.url}/x", timeout=HTTP_TIMEOUT_S).status_code == 502
    assert metric(gateway, "gateway_breaker_state") == 1

    started = time.monotonic()
    refused = requests.get(f"{gateway.url}/x", timeout=HTTP_TIMEOUT_S)
    assert time.monotonic() - started < 0.5, "an open breaker answers without waiting"
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert refused.json()["error"]["type"] == "circuit_open"
    attempts_while_open = metric(gateway, "gateway_upstream_attempts_total")
    assert attempts_while_open == 3

    start(BACKEND_APP, port=upstream_port)
    time.sleep(0.75)
    assert requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S).status_code == 200
    assert metric(gateway, "gateway_breaker_state") == 0
    assert metric(gateway, 'gateway_breaker_transitions_total{to="open"}') == 1
    assert metric(gateway, 'gateway_breaker_transitions_total{to="half_open"}') == 1
    assert metric(gateway, 'gateway_breaker_transitions_total{to="closed"}') == 1


def test_retries_only_idempotent_requests(start: Starter) -> None:
    with ScriptedUpstream() as upstream:
        gateway = start_gateway(start, upstream.port, GATEWAY_BACKOFF_MS="10")

        upstream.arm(["reset", "reset"])
        got = requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
        assert got.status_code == 200 and got.headers["X-Gateway-Retries"] == "2"

        upstream.arm(["reset"])
        posted = requests.post(f"{gateway.url}/orders", json={}, timeout=HTTP_TIMEOUT_S)
        assert posted.status_code == 502 and upstream.connections == 1

        upstream.arm(["reset"])
        keyed = requests.post(f"{gateway.url}/orders", json={}, timeout=HTTP_TIMEOUT_S,
                              headers={"Idempotency-Key": "order-1"})
        assert keyed.status_code == 200 and keyed.headers["X-Gateway-Retries"] == "1"
    assert metric(gateway, "gateway_retries_total") == 3


def test_retries_off_means_one_try(start: Starter) -> None:
    with ScriptedUpstream(["reset"]) as upstream:
        gateway = start_gateway(start, upstream.port, GATEWAY_RETRIES="off")
        assert requests.get(f"{gateway.url}/a", timeout=HTTP_TIMEOUT_S).status_code == 502
        assert upstream.connections == 1


def test_error_mapping_off_resets_the_client(start: Starter) -> None:
    gateway = start_gateway(start, free_port(), GATEWAY_ERROR_MAPPING="off")
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    assert caused_by_reset(raised.value), repr(raised.value)
    assert metric(gateway, 'gateway_requests_total{code="reset"}') == 1


def test_resilience_off_disables_breaker_and_retries(start: Starter) -> None:
    gateway = start_gateway(start, free_port(), GATEWAY_RESILIENCE="off",
                            GATEWAY_BREAKER_FAILURES="2")
    for _ in range(4):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{gateway.url}/x", timeout=HTTP_TIMEOUT_S)
    assert metric(gateway, "gateway_breaker_state") == 0
    assert metric(gateway, "gateway_upstream_attempts_total") == 4
    assert metric(gateway, "gateway_retries_total") == 0


def test_upstream_dying_mid_stream(start: Starter) -> None:
    with ScriptedUpstream(["sse_then_reset", "body_then_reset"]) as upstream:
        gateway = start_gateway(start, upstream.port)
        with requests.get(f"{gateway.url}/sse", stream=True, timeout=HTTP_TIMEOUT_S) as sse:
            lines = list(sse.iter_lines(decode_unicode=True))
        assert 'data: {"n": 1}' in lines and "event: error" in lines
        assert "data: [DONE]" not in lines

        with pytest.raises((requests.exceptions.ChunkedEncodingError,
                            requests.exceptions.ConnectionError)):
            requests.get(f"{gateway.url}/blob", timeout=HTTP_TIMEOUT_S)
    assert metric(gateway, 'gateway_upstream_failures_total{kind="midstream"}') == 2


def test_services_exit_quickly_on_sigterm(backend: Service, start: Starter) -> None:
    gateway = start_gateway(start, backend.port)
    started = time.monotonic()
    gateway.process.terminate()
    assert gateway.process.wait(timeout=3) == 0
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------- breaker state machine


def _load_breaker_module() -> ModuleType:
    """breaker.py has no sibling imports, so it can be loaded straight from its file."""
    spec = importlib.util.spec_from_file_location("gateway_breaker",
                                                  GATEWAY_APP.parent / "breaker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_breaker_half_open_lets_exactly_one_trial_through() -> None:
    breaker_module = _load_breaker_module()
    now = [100.0]
    breaker = breaker_module.CircuitBreaker(2, 1.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.try_acquire()
        breaker.record_failure()
    assert breaker.state == breaker_module.BreakerState.OPEN
    assert not breaker.try_acquire() and breaker.retry_after_header() == "1"

    now[0] += 1.0
    assert breaker.try_acquire(), "first caller after the open period is the trial"
    assert not breaker.try_acquire(), "everyone else waits for the trial's verdict"
    breaker.record_failure()
    assert breaker.state == breaker_module.BreakerState.OPEN

    now[0] += 1.0
    assert breaker.try_acquire()
    breaker.record_success()
    assert breaker.state == breaker_module.BreakerState.CLOSED
    assert dict(breaker.transitions) == {"open": 2, "half_open": 2, "closed": 1}


# ---------------------------------------------------------------- scenario-library mechanisms


def _load_sibling(name: str, folder: Path) -> ModuleType:
    """Load a module of a reference service (its sibling imports found in its folder and in
    docker/shared, as in the image, where they lie flat in /app)."""
    spec = importlib.util.spec_from_file_location(f"ref_{folder.name}_{name}", folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    sys.path[:0] = [str(folder), str(shared_modules())]
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
        sys.path.remove(str(folder))
        sys.path.remove(str(shared_modules()))
    return module


def test_gateway_config_new_switches_and_concurrency_limit() -> None:
    config = _load_sibling("config", GATEWAY_APP.parent)
    default = config.GatewayConfig.from_env({})
    assert default.timeouts_enabled and default.stream_errors_enabled
    assert default.long_streams_enabled and default.streaming_enabled
    assert default.retry_after_enabled and default.body_drain_enabled
    assert default.client_deadline_enabled and default.max_concurrency > 0
    assert config.GatewayConfig.from_env({"GATEWAY_MAX_CONCURRENCY": "off"}).max_concurrency == 0
    assert config.GatewayConfig.from_env({"GATEWAY_MAX_CONCURRENCY": "7"}).max_concurrency == 7
    naive = config.GatewayConfig.from_env({"GATEWAY_RESILIENCE": "off"})
    assert not (naive.timeouts_enabled or naive.stream_errors_enabled or naive.streaming_enabled
                or naive.retry_after_enabled or naive.body_drain_enabled
                or naive.long_streams_enabled or naive.client_deadline_enabled)
    assert naive.max_concurrency == 0
    with pytest.raises(ValueError):
        config.GatewayConfig.from_env({"GATEWAY_TIMEOUTS": "maybe"})


def test_backend_rate_limiter_punishes_callers_that_ignore_retry_after() -> None:
    backend_module = _load_sibling("app", BACKEND_APP.parent)
    limiter = backend_module.RateLimiter(rps=2, retry_after_s=1, now=10.0)
    assert limiter.admit(10.0) and limiter.admit(10.0)
    assert not limiter.admit(10.0), "bucket empty: a 1 s pause starts"
    assert not limiter.admit(10.1), "in-flight stragglers get 429 but do not extend it"
    assert limiter.admit(11.05), "a caller that waited as told gets back in"

    while limiter.admit(11.06):  # drain the bucket: a new pause starts at 11.06
        pass
    for t in (11.5, 12.0, 12.5, 13.0):
        assert not limiter.admit(t), "hammering during the pause keeps restarting it"
    assert limiter.admit(14.1)


def test_backend_rate_limit_and_memory_hog_endpoints(start: Starter) -> None:
    backend = start(BACKEND_APP, RATE_LIMIT_RPS="1", RATE_LIMIT_RETRY_AFTER_S="30")
    codes = [requests.get(f"{backend.url}/api/items/1", timeout=HTTP_TIMEOUT_S).status_code
             for _ in range(3)]
    assert codes[0] == 200 and codes[1:] == [429, 429]
    limited = requests.get(f"{backend.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    assert limited.headers["Retry-After"] == "30"
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert requests.get(f"{backend.url}/healthz", timeout=HTTP_TIMEOUT_S).status_code == 200

    hog_backend = start(BACKEND_APP)
    held = requests.post(f"{hog_backend.url}/hog?mb=3", timeout=HTTP_TIMEOUT_S).json()
    assert held == {"held_mb": 3}


def test_gateway_honours_upstream_retry_after(start: Starter) -> None:
    backend = start(BACKEND_APP, RATE_LIMIT_RPS="1", RATE_LIMIT_RETRY_AFTER_S="30")
    gateway = start_gateway(start, backend.port)
    assert requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S).status_code == 200
    relayed = requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    assert relayed.status_code == 429 and relayed.json()["error"]["type"] == "rate_limit_exceeded"
    held = requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    assert held.status_code == 429 and held.json()["error"]["type"] == "upstream_rate_limited"
    assert int(held.headers["Retry-After"]) >= 1
    stats = requests.get(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S).json()
    assert stats["requests"]["/api/items/1"] == 2, "the held request never reached upstream"
    assert metric(gateway, "gateway_upstream_backoffs_total") == 1


def test_gateway_without_retry_after_retries_429s(start: Starter) -> None:
    backend = start(BACKEND_APP, RATE_LIMIT_RPS="1", RATE_LIMIT_RETRY_AFTER_S="30")
    gateway = start_gateway(start, backend.port, GATEWAY_RETRY_AFTER="off",
                            GATEWAY_BACKOFF_MS="5", GATEWAY_BREAKER="off")
    for _ in range(2):
        requests.get(f"{gateway.url}/api/items/1", timeout=HTTP_TIMEOUT_S)
    stats = requests.get(f"{backend.url}/stats", timeout=HTTP_TIMEOUT_S).json()
    assert stats["requests"]["/api/items/1"] == 4, "1 success + 3 tries of a 429: a storm"


def test_gateway_sheds_load_above_max_concurrency(backend: Service, start: Starter) -> None:
    gateway = start_gateway(start, backend.port, GATEWAY_MAX_CONCURRENCY="1")
    def occupy() -> None:  # only needs to be in flight; how it ends is not this test's concern
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{gateway.url}/api/items/1?delay_ms=3000", timeout=HTTP_TIMEOUT_S)

    slow = threading.Thread(target=occupy, daemon=True)
    slow.start()
    for _ in range(200):
        if metric(gateway, "gateway_in_flight") == 1:
            break
        time.sleep(0.02)
    shed = requests.get(f"{gateway.url}/api/items/2", timeout=HTTP_TIMEOUT_S)
    assert shed.status_code == 503 and shed.json()["error"]["type"] == "overloaded"
    assert shed.headers["Retry-After"] == "1"
    assert metric(gateway, "gateway_shed_total") == 1
    slow.join(timeout=HTTP_TIMEOUT_S)


def test_body_drain_off_resets_an_oversized_upload(backend: Service, start: Starter) -> None:
    gateway = start_gateway(start, backend.port, GATEWAY_MAX_BODY_BYTES="1000",
                            GATEWAY_BODY_DRAIN="off")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{gateway.url}/v1/chat/completions", data=b"x" * (8 * 1024 * 1024),
                      timeout=HTTP_TIMEOUT_S)


def test_long_streams_survive_the_total_timeout_unless_switched_off(
    backend: Service, start: Starter
) -> None:
    body = {"messages": [], "stream": True, "max_tokens": 8}
    url_path = "/v1/chat/completions?chunk_delay_ms=150"  # ~1.2 s, total timeout 0.5 s
    gateway = start_gateway(start, backend.port, GATEWAY_TOTAL_TIMEOUT_MS="500")
    whole = requests.post(gateway.url + url_path, json=body, timeout=HTTP_TIMEOUT_S)
    assert whole.text.rstrip().endswith("data: [DONE]")

    cutting = start_gateway(start, backend.port, GATEWAY_TOTAL_TIMEOUT_MS="500",
                            GATEWAY_LONG_STREAMS="off")
    cut = requests.post(cutting.url + url_path, json=body, timeout=HTTP_TIMEOUT_S)
    assert "event: error" in cut.text and "[DONE]" not in cut.text


def test_streaming_off_buffers_and_timeouts_off_waits(backend: Service, start: Starter) -> None:
    buffering = start_gateway(start, backend.port, GATEWAY_STREAMING="off")
    item = requests.get(f"{buffering.url}/api/items/9?size=100000", timeout=HTTP_TIMEOUT_S)
    assert item.status_code == 200 and len(item.json()["filler"]) == 100000

    patient = start_gateway(start, backend.port, GATEWAY_TIMEOUTS="off",
                            GATEWAY_TRY_TIMEOUT_MS="200", GATEWAY_TOTAL_TIMEOUT_MS="300")
    late = requests.get(f"{patient.url}/api/items/1?delay_ms=1000", timeout=HTTP_TIMEOUT_S)
    assert late.status_code == 200, "without timeouts the gateway waits for the upstream"


def test_gateway_answers_within_the_clients_stated_budget(
    backend: Service, start: Starter
) -> None:
    gateway = start_gateway(start, backend.port, GATEWAY_BREAKER="off")
    reply = requests.get(f"{gateway.url}/api/items/1?delay_ms=4000", timeout=HTTP_TIMEOUT_S,
                         headers={"X-Request-Timeout-Ms": "600"})
    assert reply.status_code == 504, "the 600 ms budget, not the 5 s total, applied"

    ignoring = start_gateway(start, backend.port, GATEWAY_CLIENT_DEADLINE="off")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{ignoring.url}/api/items/1?delay_ms=4000", timeout=1.0,
                     headers={"X-Request-Timeout-Ms": "600"})


def test_stream_errors_off_ends_a_cut_stream_silently(start: Starter) -> None:
    with ScriptedUpstream() as upstream:
        gateway = start_gateway(start, upstream.port, GATEWAY_STREAM_ERRORS="off")
        upstream.arm(["sse_then_reset"])
        cut = requests.post(f"{gateway.url}/v1/chat/completions", json={}, timeout=HTTP_TIMEOUT_S)
        assert cut.status_code == 200
        assert "event: error" not in cut.text and "[DONE]" not in cut.text
