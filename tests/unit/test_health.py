"""Readiness: only 2xx/3xx counts; a timeout says what the service last answered (no Docker)."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from typing import Any

import pytest

from chaos.cli import main
from chaos.errors import ServiceNotReady
from chaos.runtime import health
from chaos.runtime.environment import RunEnvironment, RunningService
from chaos.runtime.paths import project_root
from tests.fixtures.loopback import free_port, http_server, text_handler

SCENARIO = project_root() / "scenarios" / "backend-reset.yaml"


class _Container:
    """A running container as far as the readiness wait looks at it."""

    name = "chaos-test-svc"
    status = "running"
    attrs: dict[str, Any] = {"State": {"ExitCode": 0}}

    def reload(self) -> None:
        pass

    def logs(self, **_: Any) -> bytes:
        return b"2024-01-01T00:00:00Z svc: listening on 8080"


def environment(port: int) -> RunEnvironment:
    env = RunEnvironment(client=None, run_id="r1", scenario="demo")  # type: ignore[arg-type]
    env.services["svc"] = RunningService("svc", "img", _Container(), 8080, port)  # type: ignore[arg-type]
    return env


@pytest.fixture
def not_found() -> Iterator[str]:
    yield from http_server(text_handler(b'{"detail": "no route /nope"}', status=404,
                                        content_type="application/json"))


@pytest.mark.parametrize(("status", "ready"), [
    (100, False), (200, True), (204, True), (301, True), (304, True), (399, True),
    (400, False), (404, False), (429, False), (499, False), (500, False), (503, False)])
def test_only_2xx_and_3xx_are_ready(status: int, ready: bool) -> None:
    assert health.healthy(status) is ready


def test_a_404_health_path_is_not_ready_and_the_timeout_shows_status_body_and_logs(
        not_found: str) -> None:
    port = int(not_found.rsplit(":", 1)[1])
    with pytest.raises(ServiceNotReady) as caught:
        environment(port).wait_healthy("svc", "/nope", timeout=0.6)
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "GET /nope did not answer 2xx/3xx within 0.6s" in message
    assert "HTTP 404" in message and "no route /nope" in message
    assert "listening on 8080" in message  # the container's last log lines beside it


def test_a_service_that_never_answers_shows_the_last_connection_error() -> None:
    with pytest.raises(ServiceNotReady) as caught:
        environment(free_port()).wait_healthy("svc", "/healthz", timeout=0.5)
    assert "never answered" in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_the_body_shown_is_cut_at_500_bytes() -> None:
    servers = http_server(text_handler(b"x" * 5000, status=503))
    address = next(servers)
    try:
        probe = health.HealthProbe(f"http://{address}/")
        assert probe() is False
        shown = probe.last_seen()
        assert "HTTP 503" in shown and shown.count("x") == 500 and shown.endswith("…")
    finally:
        next(servers, None)


def test_a_redirect_is_an_answer_not_followed() -> None:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(302)
            self.send_header("Location", "http://192.0.2.1/elsewhere")  # must never be fetched
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    servers = http_server(Redirect)
    address = next(servers)
    try:
        assert health.HealthProbe(f"http://{address}/healthz")() is True
    finally:
        next(servers, None)


@pytest.mark.parametrize("value", ["soon", "0", "-5", "1e9", "nan"])
def test_a_bad_ready_timeout_is_refused_with_exit_2(
        value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Any) -> None:
    monkeypatch.setenv(health.TIMEOUT_ENV, value)
    code = main(["run", str(SCENARIO), "--report-dir", str(tmp_path)])
    assert code == 2
    assert f"{health.TIMEOUT_ENV}={value!r}" in capsys.readouterr().err
