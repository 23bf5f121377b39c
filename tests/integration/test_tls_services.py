"""The reference services with TLS (docker/shared/tls_serving.py), real processes on
127.0.0.1 and real handshakes: the backend serves the certificate in its run folder, which a
client verifies with the run's CA alone; a swapped certificate or TLS version is served from
the next handshake on after SIGHUP, with no connection dropped, and a swap back restores
service; the gateway serves TLS to its clients and verifies an https:// upstream against
TLS_CA, answering 502 with a body (never a reset) when the upstream's certificate fails."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaos.load import connections
from chaos.stack.processes import AppProcess, launch
from chaos.tls.ca import RunCA
from chaos.tls.files import ServiceTls
from tests.fixtures.loopback import free_port

DOCKER = Path(__file__).resolve().parents[2] / "docker"
HOSTS = ("localhost", "127.0.0.1")


@pytest.fixture()
def ca(tmp_path: Path) -> Iterator[RunCA]:
    authority = RunCA(tmp_path / "tls")
    yield authority
    authority.remove()


@pytest.fixture()
def apps() -> Iterator[list[AppProcess]]:
    started: list[AppProcess] = []
    yield started
    for app in started:
        app.stop()
        assert "Traceback" not in app.log(), app.log()


def _start(apps: list[AppProcess], name: str, log: Path, env: dict[str, str],
           health: str, verify: str | bool) -> AppProcess:
    port = free_port()
    app = launch(DOCKER / name / "app.py", port, log / f"{name}.log", env, name=name)
    apps.append(app)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            requests.get(health.format(port=port), verify=verify, timeout=1)
            return app
        except requests.RequestException:
            time.sleep(0.05)
    pytest.fail(f"{name} did not start: {app.log()}")


def _backend(apps: list[AppProcess], ca: RunCA, log: Path, folder_name: str = "backend",
             **env: str) -> tuple[AppProcess, ServiceTls]:
    folder = ServiceTls(ca, folder_name, HOSTS)
    log.mkdir(parents=True, exist_ok=True)
    app = _start(apps, "backend", log, {"TLS_DIR": str(folder.folder), **env},
                 "https://localhost:{port}/healthz", str(ca.bundle))
    return app, folder


def _get(app: AppProcess, ca: RunCA, session: requests.Session | None = None,
         path: str = "/healthz") -> requests.Response:
    return (session or requests).get(f"https://localhost:{app.port}{path}",
                                     verify=str(ca.bundle), timeout=5)


def _reload(app: AppProcess, folder: ServiceTls, kind: str, version: str | None) -> None:
    """Swap the files, send SIGHUP, and wait for the app to say it reloaded."""
    before = app.log().count("TLS reloaded")
    folder.serve(kind, version)  # type: ignore[arg-type]
    os.kill(app.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while app.log().count("TLS reloaded") == before:
        assert time.monotonic() < deadline, app.log()
        time.sleep(0.02)


def test_plain_http_is_refused_and_the_run_ca_is_enough(apps, ca: RunCA, tmp_path: Path) -> None:
    backend, _ = _backend(apps, ca, tmp_path)
    assert _get(backend, ca).json()  # verified against ca.pem alone
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{backend.port}/healthz", timeout=2)


def test_a_swap_on_sighup_takes_the_next_handshake_and_drops_no_connection(
        apps, ca: RunCA, tmp_path: Path) -> None:
    backend, folder = _backend(apps, ca, tmp_path)
    with requests.Session() as kept:
        assert _get(backend, ca, kept).status_code == 200  # a keep-alive connection
        _reload(backend, folder, "expired", None)
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            _get(backend, ca)
        assert _get(backend, ca, kept).status_code == 200  # the old connection lives on
        _reload(backend, folder, "valid", "TLSv1")
        # asyncio closes a failed handshake without flushing OpenSSL's protocol_version
        # alert, so the client reads an EOF in the handshake (nginx would send the alert)
        with pytest.raises(requests.exceptions.SSLError, match="EOF occurred|protocol version"):
            _get(backend, ca)
        _reload(backend, folder, "valid", None)
        assert _get(backend, ca).status_code == 200


def test_a_half_written_pair_keeps_the_previous_certificate(apps, ca: RunCA,
                                                            tmp_path: Path) -> None:
    backend, folder = _backend(apps, ca, tmp_path)
    (folder.folder / "key.pem").write_bytes(b"not a key")
    os.kill(backend.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "TLS reload failed" not in backend.log():
        assert time.monotonic() < deadline, backend.log()
        time.sleep(0.02)
    assert _get(backend, ca).status_code == 200
    assert backend.process.poll() is None


def test_the_gateway_serves_tls_and_verifies_its_upstream_against_the_run_ca(
        apps, ca: RunCA, tmp_path: Path) -> None:
    # idle upstream connections close after 0.2 s, so a swap meets a new handshake soon
    backend, folder = _backend(apps, ca, tmp_path, KEEPALIVE_TIMEOUT_MS="200")
    edge = ServiceTls(ca, "gateway", HOSTS)
    gateway = _start(apps, "gateway", tmp_path,
                     {"TLS_DIR": str(edge.folder), "TLS_CA": str(ca.bundle),
                      "UPSTREAM_URL": f"https://localhost:{backend.port}",
                      "GATEWAY_MAX_TRIES": "1", "GATEWAY_BREAKER": "off"},
                     "https://localhost:{port}/healthz", str(ca.bundle))
    assert _get(gateway, ca, path="/api/items/1").status_code == 200
    _reload(backend, folder, "expired", None)
    time.sleep(0.5)
    answer = _get(gateway, ca, path="/api/items/1")
    assert answer.status_code == 502 and answer.content, answer.text  # never a reset
    assert "certificate has expired" in answer.json()["error"]["message"]  # names the cause
    _reload(backend, folder, "valid", None)
    assert _get(gateway, ca, path="/api/items/1").status_code == 200


def test_without_the_run_ca_the_gateway_refuses_the_upstream(apps, ca: RunCA,
                                                             tmp_path: Path) -> None:
    backend, _ = _backend(apps, ca, tmp_path)
    gateway = _start(apps, "gateway", tmp_path,
                     {"UPSTREAM_URL": f"https://localhost:{backend.port}", "GATEWAY_MAX_TRIES": "1"},
                     "http://127.0.0.1:{port}/healthz", False)
    answer = requests.get(f"http://127.0.0.1:{gateway.port}/api/items/1", timeout=5)
    assert answer.status_code == 502 and answer.content, answer.text


def _ports(session: requests.Session, app: AppProcess, ca: RunCA, count: int) -> list[int]:
    """The local port of each of `count` requests on one session (its connection), as the
    load generator's own hook (chaos.load.connections) notes it."""
    ports = []
    connections.install()
    try:
        for _ in range(count):
            assert _get(app, ca, session).status_code == 200
            seen = connections.take()
            assert seen is not None
            ports.append(seen[1])
    finally:
        connections.uninstall()
    return ports


def test_keepalive_max_requests_turns_connections_over(apps, ca: RunCA, tmp_path: Path) -> None:
    backend, _ = _backend(apps, ca, tmp_path, KEEPALIVE_MAX_REQUESTS="3")
    with requests.Session() as session:
        ports = _ports(session, backend, ca, 7)
    assert ports[0] == ports[1] == ports[2] != ports[3]  # the third answer closed it
    assert ports[3] == ports[4] == ports[5] != ports[6]
    with requests.Session() as session:  # and said so: a client never reuses it by a race
        said = [_get(backend, ca, session).headers.get("Connection") for _ in range(3)]
    assert said[2] == "close" and said[:2] != ["close", "close"], said


def test_the_gateway_turns_its_client_connections_over_too(apps, ca: RunCA,
                                                          tmp_path: Path) -> None:
    # the gateway relays its upstream's answer as a stream: prepared before its handler
    # returns, so the cap must act when an answer is prepared (it once never did here)
    backend, _ = _backend(apps, ca, tmp_path)
    edge = ServiceTls(ca, "gateway", HOSTS)
    gateway = _start(apps, "gateway", tmp_path,
                     {"TLS_DIR": str(edge.folder), "TLS_CA": str(ca.bundle),
                      "UPSTREAM_URL": f"https://localhost:{backend.port}",
                      "KEEPALIVE_MAX_REQUESTS": "2"},
                     "https://localhost:{port}/healthz", str(ca.bundle))
    connections.install()
    try:
        ports = []
        with requests.Session() as session:
            for _ in range(5):
                assert _get(gateway, ca, session, path="/api/items/1").status_code == 200
                seen = connections.take()
                assert seen is not None
                ports.append(seen[1])
    finally:
        connections.uninstall()
    assert ports[0] == ports[1] != ports[2] == ports[3] != ports[4], ports


def test_tls_reload_drop_resets_open_connections_and_hot_keeps_them(
        apps, ca: RunCA, tmp_path: Path) -> None:
    hot, hot_folder = _backend(apps, ca, tmp_path / "hot", "hot")
    dropping, drop_folder = _backend(apps, ca, tmp_path / "drop", "drop", TLS_RELOAD="drop")
    with requests.Session() as kept_hot, requests.Session() as kept_drop:
        first_hot = _ports(kept_hot, hot, ca, 1)
        first_drop = _ports(kept_drop, dropping, ca, 1)
        _reload(hot, hot_folder, "rotated", None)
        _reload(dropping, drop_folder, "rotated", None)
        assert _ports(kept_hot, hot, ca, 1) == first_hot  # the same connection lives on
        assert _ports(kept_drop, dropping, ca, 1) != first_drop  # it was reset: a new one
    assert "reset 1 open connections" in dropping.log()


def test_the_loopback_stack_refuses_tls(tmp_path: Path) -> None:
    from chaos.scenario.loader import load_scenario
    from chaos.stack.loopback import refusals

    path = tmp_path / "tls.yaml"
    path.write_text(TLS_SCENARIO, encoding="utf-8")
    found = dict(refusals(load_scenario(path)))
    assert "TLS needs Docker" in found["services"], found


TLS_SCENARIO = """\
name: tls-loopback
description: A backend with TLS cannot run on the loopback stack.
services:
  backend: {build: docker/backend, port: 8080, tls: true}
load:
  target: backend
  requests: [{name: h, method: GET, path: /healthz}]
phases: [{name: only, duration: 1s}]
"""
