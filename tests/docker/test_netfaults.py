"""Network faults on real containers: each kind has its effect, and is gone afterwards.

The target is the reference backend, started by the harness's own RunEnvironment
(no capabilities, labelled with a test run id); this process reaches it at its
address on the run's bridge network, so a RST arrives unaltered. The container is
kept across tests: after every undo, its namespace must hold no CHAOS chain and its
root qdisc must be back to the default.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from chaos.faults.base import FaultContext
from chaos.faults.netns import CHAIN_PREFIX, IMAGE, LABEL_CHAIN, inject_net_fault
from chaos.load.classify import classify_exception
from chaos.runtime import labels as L
from chaos.runtime.base_image import ensure_base
from chaos.runtime.environment import RunEnvironment, sweep
from chaos.runtime.images import ensure_image, spec_for_build_dir
from chaos.scenario.model import NetFault

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080


@pytest.fixture(scope="module")
def env():
    client = docker.from_env()
    client.ping()
    base = ensure_base(client)
    run_id = f"test-netfault-{int(time.time())}"
    environment = RunEnvironment(client, run_id, "test-netfaults")
    environment.tool_images[IMAGE] = ensure_image(
        client, spec_for_build_dir(ROOT / "docker" / IMAGE), base)
    backend = ensure_image(client, spec_for_build_dir(ROOT / "docker" / "backend"), base)
    try:
        environment.create_network()
        environment.start("backend", backend, PORT, {})
        environment.start("peer", backend, PORT, {})
        environment.wait_healthy("backend", "/healthz", timeout=60)
        environment.wait_healthy("peer", "/healthz", timeout=60)
        yield environment
    finally:
        environment.teardown()


def ctx(env: RunEnvironment) -> FaultContext:
    return FaultContext(proxies=None, env=env)  # type: ignore[arg-type]  # no proxy needed


def ip_of(env: RunEnvironment, name: str = "backend") -> str:
    ip = env.services[name].network_ip(env.prefix)
    assert ip is not None
    return ip


def namespace_state(env: RunEnvironment, name: str = "backend") -> str:
    """iptables rules, qdiscs and links as a fresh NET_ADMIN container in the namespace sees them."""
    out = env.client.containers.run(
        env.tool_images[IMAGE], ["sh", "-c", "iptables -w -S; tc qdisc show; ip -o -d link show"],
        network_mode=f"container:{env.container(name).id}", cap_drop=["ALL"],
        cap_add=["NET_ADMIN"], remove=True, labels=env.labels)
    return out.decode()


def assert_clean(env: RunEnvironment, name: str = "backend") -> None:
    state = namespace_state(env, name)
    assert CHAIN_PREFIX not in state, state
    assert "tbf" not in state and "qdisc noqueue 0: dev eth0 root" in state, state
    assert "htb" not in state and "ingress" not in state and "ifb" not in state, state
    sidecars = env.client.containers.list(
        all=True, filters={"label": [f"{L.RUN}={env.run_id}", LABEL_CHAIN]})
    assert sidecars == [], [c.name for c in sidecars]
    env.container(name).reload()
    assert env.container(name).status == "running"  # the kept container survives the undo


def get(url: str, timeout: tuple[float, float] = (1.0, 3.0)) -> str:
    """One request on a fresh connection; the project's classifier names what happened."""
    try:
        response = requests.get(url, timeout=timeout, headers={"Connection": "close"})
        return "ok" if response.ok else f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        return classify_exception(exc)[0]


def net(**kwargs: Any) -> NetFault:
    return NetFault.model_validate({"service": "backend", **kwargs})


def test_firewall_reset_is_seen_as_reset_then_removed(env):
    ip = ip_of(env)
    kept = http.client.HTTPConnection(ip, PORT, timeout=3)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read()
    injected = inject_net_fault(net(net="firewall_reset", port=PORT), ctx(env), 0)
    try:
        assert CHAIN_PREFIX in namespace_state(env)
        kept.request("GET", "/healthz")  # an open keep-alive connection
        with pytest.raises(ConnectionResetError) as caught:
            kept.getresponse().read()
        assert classify_exception(caught.value)[0] == "reset"
        fresh = [get(f"http://{ip}:{PORT}/healthz") for _ in range(5)]
        assert fresh == ["reset"] * 5, fresh
    finally:
        assert injected.undo is not None
        injected.undo()
    assert get(f"http://{ip}:{PORT}/healthz") == "ok"
    assert_clean(env)


def test_peer_scoped_reset_spares_everyone_else(env):
    """Only traffic with the peer is hit: this process (not the peer) still gets answers."""
    ip = ip_of(env)
    fault = net(net="firewall_reset", port=PORT, peer="peer")
    injected = inject_net_fault(fault, ctx(env), 0)
    probe = (f"import http.client as h\nc = h.HTTPConnection('{ip}', {PORT}, timeout=3)\n"
             "try:\n c.request('GET', '/healthz'); c.getresponse().read(); print('ok')\n"
             "except h.RemoteDisconnected: print('closed')\n"
             "except ConnectionResetError: print('reset')\n"
             "except Exception as e: print(type(e).__name__, e)")
    try:
        assert get(f"http://{ip}:{PORT}/healthz") == "ok"
        _, out = env.container("peer").exec_run(["python3", "-c", probe])
        assert out.decode().strip() == "reset"
    finally:
        assert injected.undo is not None
        injected.undo()
    _, out = env.container("peer").exec_run(["python3", "-c", probe])
    assert out.decode().strip() == "ok"
    assert_clean(env)


def test_blackhole_is_seen_as_timeout_then_removed(env):
    ip = ip_of(env)
    injected = inject_net_fault(net(net="blackhole", port=PORT), ctx(env), 0)
    try:
        started = time.monotonic()
        with pytest.raises((TimeoutError, socket.timeout)):
            socket.create_connection((ip, PORT), timeout=1.0)
        assert time.monotonic() - started >= 0.9  # a silent drop, not a refusal
        assert get(f"http://{ip}:{PORT}/healthz") == "connect_timeout"
    finally:
        assert injected.undo is not None
        injected.undo()
    assert get(f"http://{ip}:{PORT}/healthz") == "ok"
    assert_clean(env)


def _connects(ip: str, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, PORT), timeout=timeout):
            return True
    except OSError:
        return False


def test_packet_loss_rate_is_measured_within_tolerance(env):
    """A dropped SYN is retransmitted only after 1 s: a 0.6 s connect attempt fails
    exactly when the SYN was lost, so the failure share estimates the loss rate."""
    ip = ip_of(env)
    probability, attempts = 0.25, 300
    injected = inject_net_fault(net(net="packet_loss", port=PORT, probability=probability),
                                ctx(env), 0)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: _connects(ip, 0.6), range(attempts)))
    finally:
        assert injected.undo is not None
        injected.undo()
    lost = results.count(False) / attempts
    print(f"packet_loss p={probability}: measured {lost:.3f} over {attempts} connects")
    assert abs(lost - probability) <= 0.1, lost  # 4 standard deviations at n=300
    assert all(_connects(ip, 0.6) for _ in range(20))
    assert_clean(env)


def _download_rate(ip: str, size: int) -> float:
    """Bits per second of one response body of `size` bytes (fresh connection)."""
    started = time.monotonic()
    response = requests.get(f"http://{ip}:{PORT}/api/items/1?size={size}", timeout=(2, 30),
                            headers={"Connection": "close"})
    elapsed = time.monotonic() - started
    assert response.ok and len(response.content) >= size
    return len(response.content) * 8 / elapsed


def test_rate_limit_caps_throughput_within_20_percent(env):
    ip = ip_of(env)
    size, cap = 3_000_000, 8_000_000  # 3 MB at 8 mbit/s: about 3 s
    unlimited = _download_rate(ip, size)
    injected = inject_net_fault(net(net="rate_limit", rate="8mbit"), ctx(env), 0)
    try:
        state = namespace_state(env)
        assert "tbf" in state, state
        limited = _download_rate(ip, size)
    finally:
        assert injected.undo is not None
        injected.undo()
    print(f"rate_limit 8mbit: measured {limited / 1e6:.2f} mbit/s (unlimited "
          f"{unlimited / 1e6:.0f} mbit/s)")
    assert unlimited > 2 * cap
    assert abs(limited - cap) <= 0.2 * cap, limited
    assert _download_rate(ip, size) > 2 * cap
    assert_clean(env)


SIDE_PORT = 9000  # a second server in a service's container: traffic on another port


def serve_blob(env: RunEnvironment, name: str, size: int) -> None:
    """A plain file server on SIDE_PORT inside the service's container (kept for the module)."""
    container = env.container(name)
    script = (f"mkdir -p /tmp/blob && head -c {size} /dev/zero > /tmp/blob/blob && "
              f"exec python3 -m http.server {SIDE_PORT} -b 0.0.0.0 -d /tmp/blob")
    ip = ip_of(env, name)
    if _connects_to(ip, SIDE_PORT, 0.5):
        return
    container.exec_run(["sh", "-c", script], detach=True)
    deadline = time.monotonic() + 15
    while not _connects_to(ip, SIDE_PORT, 0.5):
        assert time.monotonic() < deadline, f"no server on {name}:{SIDE_PORT}"
        time.sleep(0.2)


def _connects_to(ip: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def _rate_from_here(url: str) -> float:
    """Bits per second of one response body fetched by this process (fresh connection)."""
    started = time.monotonic()
    response = requests.get(url, timeout=(2, 30), headers={"Connection": "close"})
    elapsed = time.monotonic() - started
    assert response.ok and len(response.content) > 1_000_000
    return len(response.content) * 8 / elapsed


def _rate_inside(env: RunEnvironment, name: str, url: str) -> float:
    """Bits per second of one body fetched from inside a service's container (its own
    address is the source, so traffic to or from a peer is what a peer scope matches)."""
    script = ("import time, urllib.request as u\n"
              "t = time.monotonic()\n"
              f"n = len(u.urlopen({url!r}, timeout=30).read())\n"
              "print(n, time.monotonic() - t)")
    code, out = env.container(name).exec_run(["python3", "-c", script])
    assert code == 0, out.decode()
    size, elapsed = out.decode().split()
    assert int(size) > 1_000_000
    return int(size) * 8 / float(elapsed)


def test_peer_scoped_rate_limit_caps_only_traffic_to_the_peer(env):
    """backend -> peer is capped at the rate; backend -> this process, at the same time and
    from the same server port, is not."""
    ip = ip_of(env)
    size, cap = 3_000_000, 8_000_000
    url = f"http://{ip}:{PORT}/api/items/1?size={size}"
    injected = inject_net_fault(net(net="rate_limit", rate="8mbit", peer="peer"), ctx(env), 0)
    try:
        state = namespace_state(env)
        assert "qdisc htb" in state and "tbf" not in state, state
        to_peer = _rate_inside(env, "peer", url)
        to_us = _rate_from_here(url)
    finally:
        assert injected.undo is not None
        injected.undo()
    print(f"rate_limit 8mbit peer=peer: to the peer {to_peer / 1e6:.2f} mbit/s, to another "
          f"destination {to_us / 1e6:.0f} mbit/s")
    assert abs(to_peer - cap) <= 0.2 * cap, to_peer
    assert to_us > 5 * cap, to_us
    assert _rate_inside(env, "peer", url) > 5 * cap  # and the peer is free again
    assert_clean(env)


def test_port_scoped_rate_limit_caps_only_that_port(env):
    """Port 8080 of the backend is capped; a second server in the same container is not."""
    ip = ip_of(env)
    size, cap = 3_000_000, 8_000_000
    serve_blob(env, "backend", size)
    capped_url = f"http://{ip}:{PORT}/api/items/1?size={size}"
    other_url = f"http://{ip}:{SIDE_PORT}/blob"
    injected = inject_net_fault(net(net="rate_limit", rate="8mbit", port=PORT), ctx(env), 0)
    try:
        capped = _rate_from_here(capped_url)
        other = _rate_from_here(other_url)
    finally:
        assert injected.undo is not None
        injected.undo()
    print(f"rate_limit 8mbit port={PORT}: port {PORT} {capped / 1e6:.2f} mbit/s, port "
          f"{SIDE_PORT} {other / 1e6:.0f} mbit/s")
    assert abs(capped - cap) <= 0.2 * cap, capped
    assert other > 5 * cap, other
    assert_clean(env)


def test_ingress_rate_limit_caps_what_the_service_receives_from_the_peer(env):
    """direction: ingress, peer + port: what the backend downloads from the peer's port 8080
    arrives at the rate (through the fault's ifb); from the peer's other port it does not."""
    peer_ip = ip_of(env, "peer")
    size, cap = 3_000_000, 8_000_000
    serve_blob(env, "peer", size)
    capped_url = f"http://{peer_ip}:{PORT}/api/items/1?size={size}"
    other_url = f"http://{peer_ip}:{SIDE_PORT}/blob"
    fault = net(net="rate_limit", rate="8mbit", direction="ingress", peer="peer", port=PORT)
    injected = inject_net_fault(fault, ctx(env), 0)
    try:
        state = namespace_state(env)
        assert "qdisc ingress ffff: dev eth0" in state and "ifb" in state, state
        capped = _rate_inside(env, "backend", capped_url)
        other = _rate_inside(env, "backend", other_url)
    finally:
        assert injected.undo is not None
        injected.undo()
    print(f"rate_limit 8mbit ingress peer=peer port={PORT}: from port {PORT} "
          f"{capped / 1e6:.2f} mbit/s, from port {SIDE_PORT} {other / 1e6:.0f} mbit/s")
    assert abs(capped - cap) <= 0.2 * cap, capped
    assert other > 5 * cap, other
    assert _rate_inside(env, "backend", capped_url) > 5 * cap
    assert_clean(env)


def test_both_directions_rate_limit_caps_each_way_with_the_peer(env):
    """direction: both, peer: what the backend sends to the peer and what it receives from
    the peer are each capped at the rate; what it sends to this process is not."""
    ip, peer_ip = ip_of(env), ip_of(env, "peer")
    size, cap = 3_000_000, 8_000_000
    serve_blob(env, "peer", size)
    sent_url = f"http://{ip}:{PORT}/api/items/1?size={size}"
    received_url = f"http://{peer_ip}:{SIDE_PORT}/blob"
    fault = net(net="rate_limit", rate="8mbit", direction="both", peer="peer")
    injected = inject_net_fault(fault, ctx(env), 0)
    try:
        state = namespace_state(env)
        assert "qdisc htb" in state and "ifb" in state, state
        sent = _rate_inside(env, "peer", sent_url)
        received = _rate_inside(env, "backend", received_url)
        to_us = _rate_from_here(sent_url)
    finally:
        assert injected.undo is not None
        injected.undo()
    print(f"rate_limit 8mbit both peer=peer: backend->peer {sent / 1e6:.2f} mbit/s, "
          f"peer->backend {received / 1e6:.2f} mbit/s, backend->us {to_us / 1e6:.0f} mbit/s")
    assert abs(sent - cap) <= 0.2 * cap, sent
    assert abs(received - cap) <= 0.2 * cap, received
    assert to_us > 5 * cap, to_us
    assert_clean(env)


def test_run_sweep_removes_sidecars_left_active(env):
    """A run that dies with faults active (last test of the module: it sweeps the run).

    The sidecar carries the run labels, so the label sweep of teardown, interrupt and
    `chaos doctor --sweep` removes it; its rules lived in the namespace of a container
    of the same run, and go with it.
    """
    inject_net_fault(NetFault(service="peer", net="blackhole", port=PORT), ctx(env), 0)
    filters = {"label": [f"{L.RUN}={env.run_id}", LABEL_CHAIN]}
    sidecars = env.client.containers.list(all=True, filters=filters)
    assert len(sidecars) == 1 and sidecars[0].labels[L.PID]
    assert CHAIN_PREFIX in namespace_state(env, "peer")
    assert sweep(env.client, {L.RUN: env.run_id}) == []
    everything = {"label": [f"{L.RUN}={env.run_id}"]}
    assert env.client.containers.list(all=True, filters=everything) == []
    assert env.client.networks.list(filters=everything) == []


@pytest.mark.parametrize("scenario", ["waf-reset", "lossy-link", "firewall-blackhole"])
def test_network_scenarios_pass(tmp_path, scenario):
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "run", scenario, "--report-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] == "pass"
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": [f"{L.RUN}={result['run_id']}"]}) == []
