"""The reference backend serving TLS from a run's folder (docker/shared/tls_serving.py):
the certificate a client verifies with the run's CA alone; a swapped certificate or TLS
version served from the next handshake on after SIGHUP, with no connection dropped; a
swap back restores service. A real process on 127.0.0.1, real handshakes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaos.stack.processes import AppProcess, launch
from chaos.tls.ca import RunCA
from chaos.tls.files import ServiceTls
from tests.fixtures.loopback import free_port

BACKEND_APP = Path(__file__).resolve().parents[2] / "docker" / "backend" / "app.py"


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[AppProcess, ServiceTls]]:
    ca = RunCA(tmp_path / "tls")
    folder = ServiceTls(ca, "backend", ("localhost", "127.0.0.1"))
    app = launch(BACKEND_APP, free_port(), tmp_path / "backend.log",
                 {"TLS_DIR": str(folder.folder)}, name="backend")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if _get(app, folder).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail(f"the backend did not serve TLS: {app.log()}")
        yield app, folder
    finally:
        app.stop()
        ca.remove()


def _get(app: AppProcess, folder: ServiceTls,
         session: requests.Session | None = None) -> requests.Response:
    client = session or requests
    return client.get(f"https://localhost:{app.port}/healthz",
                      verify=str(folder.folder / "ca.pem"), timeout=5)


def _reload(app: AppProcess, folder: ServiceTls, kind: str, version: str | None) -> None:
    """Swap the files, send SIGHUP, and wait for the app to say it reloaded."""
    before = app.log().count("TLS reloaded")
    folder.serve(kind, version)  # type: ignore[arg-type]
    os.kill(app.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while app.log().count("TLS reloaded") == before:
        assert time.monotonic() < deadline, app.log()
        time.sleep(0.02)


def test_plain_http_is_refused_and_the_run_ca_is_enough(served) -> None:
    app, folder = served
    assert _get(app, folder).json()  # verified against ca.pem alone
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{app.port}/healthz", timeout=2)


def test_a_swap_on_sighup_takes_the_next_handshake_and_drops_no_connection(served) -> None:
    app, folder = served
    with requests.Session() as kept:
        assert _get(app, folder, kept).status_code == 200  # a keep-alive connection
        _reload(app, folder, "expired", None)
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            _get(app, folder)
        assert _get(app, folder, kept).status_code == 200  # the old connection lives on
        _reload(app, folder, "valid", "TLSv1")
        # asyncio closes a failed handshake without flushing OpenSSL's protocol_version
        # alert, so the client reads an EOF in the handshake (nginx would send the alert)
        with pytest.raises(requests.exceptions.SSLError, match="EOF occurred|protocol version"):
            _get(app, folder)
        _reload(app, folder, "valid", None)
        assert _get(app, folder).status_code == 200
    assert "Traceback" not in app.log()


def test_a_half_written_pair_keeps_the_previous_certificate(served) -> None:
    app, folder = served
    (folder.folder / "key.pem").write_bytes(b"not a key")
    os.kill(app.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "TLS reload failed" not in app.log():
        assert time.monotonic() < deadline, app.log()
        time.sleep(0.02)
    assert _get(app, folder).status_code == 200
    assert app.process.poll() is None
