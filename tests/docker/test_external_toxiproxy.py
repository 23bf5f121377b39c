"""TOXIPROXY_URL: a run uses the user's own Toxiproxy server and leaves it as it found it.

The "user's server" is the project's own server started standalone on the host (as a
user would run ``toxiproxy-server``), with one proxy of the user's own on it. The run
must start no Toxiproxy container, create its proxies there under run-unique names
(listening on the host's address on the run's bridge network, dialling the services'
container addresses), fire its faults through them, and delete exactly its own proxies
afterwards, on success and, through the ledger and `chaos doctor`, after a SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from chaos.proxy.client import ToxiproxyClient
from tests.fixtures.loopback import free_port

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CHAOS = [sys.executable, "-m", "chaos.cli"]
USERS_OWN = "users-own"
RUN_LINE = re.compile(r"run (\d{8}-\d{6}-[0-9a-f]{4}) of scenario")


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture()
def users_server(tmp_path: Path) -> Iterator[ToxiproxyClient]:
    """A Toxiproxy server on the host, with one proxy the run must not touch."""
    port = free_port()
    log = open(tmp_path / "users-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "chaos.proxy.embedded", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    client = ToxiproxyClient(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready(timeout=20)
        client.create_proxy(USERS_OWN, "127.0.0.1:0", "127.0.0.1:9")
        client.add_toxic(USERS_OWN, "latency", attributes={"latency": 1}, name="users-toxic")
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Watch:
    """What the user's server and Docker showed while a run was going on."""

    proxies: dict[str, dict[str, Any]] = field(default_factory=dict)  # last seen, by name
    toxics: set[str] = field(default_factory=set)  # "proxy/toxic" ever seen
    connections: dict[str, int] = field(default_factory=dict)  # proxy -> max total seen
    toxiproxy_runs: set[str] = field(default_factory=set)  # run ids of toxiproxy containers
    stop: threading.Event = field(default_factory=threading.Event)


def _watch(server: ToxiproxyClient, engine: docker.DockerClient, watch: Watch) -> None:
    label = {"label": ["gateway-chaos.service=toxiproxy"]}
    while not watch.stop.is_set():
        try:
            body = requests.get(server.base_url + "/proxies", timeout=2).json()
            for name, proxy in body.items():
                watch.proxies[name] = proxy
                watch.toxics.update(f"{name}/{t['name']}" for t in proxy.get("toxics") or [])
                stats = requests.get(f"{server.base_url}/proxies/{name}/stats", timeout=2)
                if stats.status_code == 200:
                    total = int(stats.json().get("connections", {}).get("total", 0))
                    watch.connections[name] = max(total, watch.connections.get(name, 0))
            for container in engine.containers.list(all=True, filters=label):
                watch.toxiproxy_runs.add((container.labels or {}).get("gateway-chaos.run", ""))
        except (requests.RequestException, ValueError, docker.errors.APIError):
            pass
        watch.stop.wait(0.3)


def _env(server: ToxiproxyClient) -> dict[str, str]:
    return {**os.environ, "TOXIPROXY_URL": server.base_url}


def _run_into_its_fault(server: ToxiproxyClient, report_dir: Path
                        ) -> tuple[subprocess.Popen[str], list[str], str]:
    """Start backend-reset with a 30 s fault phase; return once its fault is on (or after 240 s):
    the process, the output read so far, and the run id."""
    proc = subprocess.Popen(
        [*CHAOS, "run", "backend-reset", "--report-dir", str(report_dir),
         "--set", "phases.0.duration=2s", "--set", "phases.1.duration=30s",
         "--set", "assertions=[]"],
        cwd=ROOT, env=_env(server), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    run_id = ""
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        seen.append(line)
        match = RUN_LINE.search(line)
        if match:
            run_id = match.group(1)
        if "fault on:" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)  # a toxic is active on the run's proxy
    return proc, seen, run_id


def _labelled(engine: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": [f"gateway-chaos.run={run_id}"]}
    return ([c.name for c in engine.containers.list(all=True, filters=label)]
            + [n.name for n in engine.networks.list(filters=label)])


def test_a_run_uses_the_users_server_and_leaves_only_the_users_proxies(
        engine: docker.DockerClient, users_server: ToxiproxyClient, tmp_path: Path) -> None:
    watch = Watch()
    watcher = threading.Thread(target=_watch, args=(users_server, engine, watch), daemon=True)
    watcher.start()
    try:
        proc = subprocess.run([*CHAOS, "run", "backend-reset", "--report-dir", str(tmp_path)],
                              cwd=ROOT, env=_env(users_server), capture_output=True, text=True,
                              timeout=300)
    finally:
        watch.stop.set()
        watcher.join(timeout=10)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    result = json.loads((run_dir / "result.json").read_text())
    run_id = result["run_id"]
    assert result["verdict"] == "pass"

    # the report names the user's server as the provider
    assert result["provider"].startswith(f"TOXIPROXY_URL {users_server.base_url} (Toxiproxy ")
    assert f"TOXIPROXY_URL {users_server.base_url}" in (run_dir / "report.html").read_text()

    # no Toxiproxy container for this run (other runs on this machine may have theirs)
    assert run_id not in watch.toxiproxy_runs
    assert "toxiproxy" not in result["images"]
    assert not (run_dir / "logs" / "toxiproxy.log").exists()
    events = (run_dir / "events.ndjson").read_text()
    assert '"service": "toxiproxy"' not in events

    # the run's proxy lived on the user's server, on the bridge, pointing at a container
    name = f"chaos-{run_id}-backend"
    assert name in watch.proxies, sorted(watch.proxies)
    seen = watch.proxies[name]
    listen_host = seen["listen"].rsplit(":", 1)[0]
    assert listen_host.startswith("172.") or listen_host.startswith("192.168."), seen
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+:8080", seen["upstream"]), seen

    # the faults fired: the toxic was on that proxy, traffic went through it, and the
    # reference gateway retried the resets it caused
    assert any(t.startswith(f"{name}/reset_peer") for t in watch.toxics), watch.toxics
    assert watch.connections.get(name, 0) > 0, watch.connections
    fault = next(p for p in result["phase_stats"] if p["name"] == "fault")
    assert fault["counts"].get("ok_after_retry", 0) > 0, fault

    # afterwards: only the user's own proxy (and its toxic) remain; nothing in Docker
    left = users_server.list_proxies()
    assert list(left) == [USERS_OWN]
    assert [t["name"] for t in left[USERS_OWN].toxics] == ["users-toxic"]
    assert _labelled(engine, run_id) == []


def test_a_scenario_that_needs_the_proxy_container_is_refused_before_anything_starts(
        engine: docker.DockerClient, users_server: ToxiproxyClient, tmp_path: Path) -> None:
    fault = '[{service: backend, net: firewall_reset, peer: toxiproxy}]'
    proc = subprocess.run([*CHAOS, "run", "backend-reset", "--report-dir", str(tmp_path),
                           "--set", f"phases.1.faults={fault}"],
                          cwd=ROOT, env=_env(users_server), capture_output=True, text=True,
                          timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output  # bad input for this server: exit 2, like the loader's
    assert "phases[1].faults[0].peer" in output and "TOXIPROXY_URL" in output, output
    assert "Traceback" not in output
    match = RUN_LINE.search(output)
    assert match, output
    assert _labelled(engine, match.group(1)) == []
    assert list(users_server.list_proxies()) == [USERS_OWN]


def test_doctor_removes_the_proxies_of_a_killed_run(
        engine: docker.DockerClient, users_server: ToxiproxyClient, tmp_path: Path) -> None:
    from chaos import doctor
    from chaos.runtime.bootstrap import connect

    proc, seen, run_id = _run_into_its_fault(users_server, tmp_path)
    try:
        assert run_id and f"chaos-{run_id}-backend" in users_server.list_proxies(), "".join(seen)
        proc.kill()  # SIGKILL: no teardown at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    # only this run's leftovers are removed here: other runs on this machine are not ours
    client = connect()
    found = doctor.leftovers(client)
    assert run_id in found, found
    run = found[run_id]
    assert f"proxy chaos-{run_id}-backend on {users_server.base_url}" in run.describe()
    assert doctor.remove(run, client) == []
    assert list(users_server.list_proxies()) == [USERS_OWN]
    assert _labelled(engine, run_id) == []
    assert run_id not in doctor.leftovers(client)



def test_an_interrupted_run_deletes_its_proxies_from_the_users_server(
        engine: docker.DockerClient, users_server: ToxiproxyClient, tmp_path: Path) -> None:
    proc, seen, _ = _run_into_its_fault(users_server, tmp_path)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    match = RUN_LINE.search(output)
    assert match, output
    assert list(users_server.list_proxies()) == [USERS_OWN]
    assert _labelled(engine, match.group(1)) == []
