"""The external stack: a gateway and backend the user already runs, given by url: only.

The test plays the user: it starts the reference backend and gateway as host processes
on 127.0.0.1 (the gateway's upstream pointed at the proxy's fixed listen address) and
gives the harness nothing but their URLs. `chaos run` puts the embedded Toxiproxy server
in-process between them, drives the load and the reset toxic, and writes every report;
the same file with a container fault is refused at validation (exit 2, file:line:key).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.runtime.paths import project_root
from chaos.stack.processes import AppProcess, free_port, launch

SCENARIO = """\
name: external-reset
description: A running gateway and backend, reached by URL; connections to the backend reset.
services:
  backend: {{url: "http://127.0.0.1:{backend}", health: /healthz}}
  gateway: {{url: "http://127.0.0.1:{gateway}", health: /healthz}}
proxies:
  backend: {{upstream: "backend:{backend}", listen: "127.0.0.1:{proxy}"}}
load:
  target: gateway
  users: 20
  spawn_rate: 20
  timeout: 5s
  requests:
    - {{name: get-item, method: GET, path: "/api/items/42?delay_ms=40"}}
probes:
  upstream_requests: {{service: backend, path: /stats, field: total}}
phases:
  - {{name: baseline, duration: 3s}}
  - name: fault
    duration: 4s
    faults:
      - proxy: backend
        toxic: {{type: reset_peer, stream: downstream, toxicity: 0.5, attributes: {{timeout: 0}}}}
        redraw_every: 1s
{extra}  - {{name: recovery, duration: 3s}}
assertions:
  - {{phase: baseline, success_rate: ">= 0.99", resets: 0}}
  - {{phase: fault, resets: 0, ok_after_retry: "> 0"}}
  - {{phase: recovery, resets: 0}}
"""
CONTAINER_FAULT = "      - {container: backend, action: kill}\n"


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """What the user runs: backend and gateway on 127.0.0.1, the gateway behind the proxy."""
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.setenv("CHAOS_STATE_DIR", str(tmp_path / "state"))
    ports = {"backend": free_port(), "gateway": free_port(), "proxy": free_port()}
    apps: list[AppProcess] = [
        launch(project_root() / "docker" / "backend" / "app.py", ports["backend"],
               tmp_path / "backend.log", {}, "backend"),
        launch(project_root() / "docker" / "gateway" / "app.py", ports["gateway"],
               tmp_path / "gateway.log",
               {"UPSTREAM_URL": f"http://127.0.0.1:{ports['proxy']}"}, "gateway")]
    try:
        assert all(app.healthy() for app in apps), [app.log() for app in apps]
        yield ports
    finally:
        for app in apps:
            app.stop()


def _write(tmp_path: Path, ports: dict[str, int], extra: str = "") -> Path:
    path = tmp_path / "external.yaml"
    path.write_text(SCENARIO.format(extra=extra, **ports), encoding="utf-8")
    return path


def test_a_running_gateway_and_backend_pass_end_to_end_with_all_reports(
        tmp_path: Path, running: dict[str, int]) -> None:
    path = _write(tmp_path, running)
    code = main(["run", str(path), "--report-dir", str(tmp_path / "reports"), "--quiet"])
    [run_dir] = [p for p in (tmp_path / "reports").glob("external-reset-*") if not p.is_symlink()]
    saved = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert code == 0, (saved["error"], [a for a in saved["assertions"] if not a["passed"]])
    for name in ("report.html", "junit.xml", "events.ndjson", "requests.ndjson"):
        assert (run_dir / name).is_file(), name
    assert saved["provider"].startswith("embedded")
    assert saved["images"]["gateway"] == f"external: http://127.0.0.1:{running['gateway']}"
    fault = next(p for p in saved["phase_stats"] if p["name"] == "fault")
    assert fault["counts"].get("ok_after_retry", 0) > 0, "the reset toxic reached the gateway"
    assert saved["upstream"], "the upstream counter probe read the running backend"
    assert not list((tmp_path / "state" / "runs").glob("*.ndjson")), "the ledger is not empty"
    # the user's services are still running: the harness removes only what it made
    import requests

    assert requests.get(f"http://127.0.0.1:{running['gateway']}/healthz", timeout=2).ok


def test_a_container_fault_on_a_service_given_by_url_exits_2_naming_the_key(
        tmp_path: Path, running: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, running, extra=CONTAINER_FAULT)
    line = path.read_text(encoding="utf-8").splitlines().index(CONTAINER_FAULT.rstrip()) + 1
    code = main(["run", str(path), "--report-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{path}:{line}: phases[1].faults[1].container" in err, err
    assert "given by url" in err and "Traceback" not in err
    assert not list((tmp_path / "reports").glob("external-reset-*")), "nothing ran"
    assert os.environ.get("TOXIPROXY_URL") is None


def test_on_the_users_toxiproxy_the_run_uses_its_own_names_and_removes_only_them(
        tmp_path: Path, running: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """TOXIPROXY_URL: the run's proxy is chaos-<run id>-backend on the user's server and
    goes at the end; the user's own proxy there is left alone."""
    from chaos.proxy.client import ToxiproxyClient
    from chaos.proxy.embedded import ServerThread

    server = ServerThread("127.0.0.1", 0)
    server.start()
    seen: set[str] = set()  # proxy names on the user's server while the run lasts
    done = threading.Event()

    def watch() -> None:
        with ToxiproxyClient(server.url) as client:
            while not done.is_set():
                with contextlib.suppress(Exception):
                    seen.update(client.list_proxies())
                time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        with ToxiproxyClient(server.url) as users:
            users.create_proxy("users-own", f"127.0.0.1:{free_port()}", "127.0.0.1:9")
        monkeypatch.setenv("TOXIPROXY_URL", server.url)
        path = _write(tmp_path, running)
        watcher.start()
        code = main(["run", str(path), "--report-dir", str(tmp_path / "reports"), "--quiet"])
        done.set()
        watcher.join(timeout=5)
        [run_dir] = [p for p in (tmp_path / "reports").glob("external-reset-*")
                     if not p.is_symlink()]
        saved = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        assert code == 0, saved["error"]
        assert saved["provider"] == f"TOXIPROXY_URL {server.url}"
        assert seen == {"users-own", f"chaos-{saved['run_id']}-backend"}, seen
        with ToxiproxyClient(server.url) as users:
            assert list(users.list_proxies()) == ["users-own"]
    finally:
        done.set()
        server.stop()
