"""Random sequences of control-API calls against a live embedded server.

A hypothesis state machine keeps a model of what was done (proxies, their
listen addresses, enabled flags and toxics in order) and, after every step,
checks that ``GET /proxies`` equals the model, that the kernel's listener
table holds exactly one listener per enabled proxy (no leaked listeners), and
that no call ever answered 500 (there is no listen failure on loopback port 0).
Client connections are opened through the proxies as the steps go; at the end
of each sequence everything is deleted and the process's socket count must
return to where it started (no leaked connections or upstream dials).
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from chaos.proxy.embedded import ServerThread

LOOPBACK = "127.0.0.1"
NAMES = st.sampled_from(["a", "b", "c"])
TOXIC_NAMES = st.sampled_from([None, "t1", "t2"])
STREAMS = st.sampled_from(["upstream", "downstream"])
# Valid attributes per type, plus a few the server must refuse with 400.
VALID = {
    "latency": st.fixed_dictionaries({"latency": st.integers(0, 20), "jitter": st.integers(0, 5)}),
    "bandwidth": st.fixed_dictionaries({"rate": st.integers(1, 10_000)}),
    "slow_close": st.fixed_dictionaries({"delay": st.integers(0, 50)}),
    "timeout": st.fixed_dictionaries({"timeout": st.integers(0, 50)}),
    "reset_peer": st.fixed_dictionaries({"timeout": st.integers(0, 50)}),
    "slicer": st.fixed_dictionaries({"average_size": st.integers(2, 64),
                                     "size_variation": st.just(1), "delay": st.integers(0, 10)}),
    "limit_data": st.fixed_dictionaries({"bytes": st.integers(0, 1000)}),
    "noop": st.just({}),
}
INVALID = st.sampled_from([
    ("bandwidth", {"rate": -1}), ("slicer", {"average_size": 0}), ("latency", {"jitter": -1}),
    ("latency", {"latency": "10ms"}), ("bogus", {}),
])


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _socket_inodes() -> set[str]:
    """Inodes of the sockets this process holds (the server runs on a thread in it)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _socket_fds() -> int:
    return len(_socket_inodes())


def _listening_ports() -> set[int]:
    """Ports this process listens on at 127.0.0.1 (other processes on the machine are
    ignored: the kernel's table is shared, the socket inodes tell whose they are)."""
    mine = _socket_inodes()
    ports = set()
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and address == "0100007F" and fields[9] in mine:
                ports.add(int(port, 16))
    return ports


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, Any]]:
    echo = _EchoServer((LOOPBACK, 0), _Echo)
    thread = threading.Thread(target=echo.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with ServerThread(LOOPBACK, 0) as server:
        yield {"api": server.url, "echo": f"{LOOPBACK}:{echo.server_address[1]}"}
    echo.shutdown()
    echo.server_close()


class ApiMachine(RuleBasedStateMachine):
    api = ""
    echo = ""

    def __init__(self) -> None:
        super().__init__()
        self.http = requests.Session()
        self.model: dict[str, dict[str, Any]] = {}
        self.clients: list[socket.socket] = []
        self.log: list[str] = []
        self.sockets_before = _socket_fds()
        self.listening_before = _listening_ports()

    # --- plumbing ---------------------------------------------------------------------------
    def call(self, method: str, path: str, json: Any = None, expect: int | None = None) -> Any:
        response = self.http.request(method, self.api + path, json=json, timeout=5)
        self.log.append(f"{method} {path} {json} -> {response.status_code} {response.text[:200]}")
        assert response.status_code != 500, response.text
        if expect is not None:
            assert response.status_code == expect, (method, path, json, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert body["status"] == response.status_code and body["error"]
        return response.json() if response.content else None

    def _new(self, name: str, listen: str, upstream: str, enabled: bool) -> dict[str, Any]:
        # A proxy created disabled shows the address it was given (port 0), as upstream.
        assert listen.startswith(f"{LOOPBACK}:") and listen.endswith(":0") != enabled
        return {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled,
                "toxics": []}

    def _settle(self) -> None:
        """An enabled proxy that was never bound now has a real port: learn it."""
        for name, proxy in self.model.items():
            if proxy["enabled"] and proxy["listen"].endswith(":0"):
                listen = self.call("GET", f"/proxies/{name}", expect=200)["listen"]
                assert listen.startswith(f"{LOOPBACK}:") and not listen.endswith(":0")
                proxy["listen"] = listen

    # --- proxies ----------------------------------------------------------------------------
    @rule(name=NAMES, enabled=st.booleans())
    def create(self, name: str, enabled: bool) -> None:
        body = {"name": name, "listen": f"{LOOPBACK}:0", "upstream": self.echo,
                "enabled": enabled}
        if name in self.model:
            self.call("POST", "/proxies", body, 409)
            return
        created = self.call("POST", "/proxies", body, 201)
        self.model[name] = self._new(name, created["listen"], self.echo, enabled)

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        self.call("DELETE", f"/proxies/{name}", expect=204 if name in self.model else 404)
        self.model.pop(name, None)

    @rule(name=NAMES, enabled=st.booleans())
    def set_enabled(self, name: str, enabled: bool) -> None:
        self.call("POST", f"/proxies/{name}", {"enabled": enabled},
                  200 if name in self.model else 404)
        if name in self.model:
            self.model[name]["enabled"] = enabled
            self._settle()

    @rule(name=NAMES, dead=st.booleans())
    def set_upstream(self, name: str, dead: bool) -> None:
        upstream = f"{LOOPBACK}:9" if dead else self.echo
        self.call("POST", f"/proxies/{name}", {"upstream": upstream},
                  200 if name in self.model else 404)
        if name in self.model:
            self.model[name]["upstream"] = upstream

    @rule(names=st.lists(NAMES, max_size=3, unique=True), keep=st.booleans())
    def populate(self, names: list[str], keep: bool) -> None:
        specs = []
        for name in names:
            old = self.model.get(name)
            listen = old["listen"] if keep and old else f"{LOOPBACK}:0"
            specs.append({"name": name, "listen": listen, "upstream": self.echo})
        result = self.call("POST", "/populate", specs, 201)["proxies"]
        assert [p["name"] for p in result] == names
        for spec, shown in zip(specs, result, strict=True):
            old = self.model.get(spec["name"])
            if old and old["listen"] == spec["listen"] and old["upstream"] == spec["upstream"]:
                continue  # unchanged: kept as it was, toxics and all
            self.model[spec["name"]] = self._new(spec["name"], shown["listen"], self.echo, True)

    @rule()
    def reset(self) -> None:
        self.call("POST", "/reset", expect=204)
        for proxy in self.model.values():
            proxy["enabled"], proxy["toxics"] = True, []
        self._settle()

    # --- toxics -----------------------------------------------------------------------------
    @rule(proxy=NAMES, toxic=TOXIC_NAMES, stream=STREAMS, data=st.data(),
          toxicity=st.sampled_from([None, 0.0, 0.5, 1.0]))
    def add_toxic(self, proxy: str, toxic: str | None, stream: str, data: st.DataObject,
                  toxicity: float | None) -> None:
        kind = data.draw(st.sampled_from(sorted(VALID)))
        attributes = data.draw(VALID[kind])
        body: dict[str, Any] = {"type": kind, "stream": stream, "attributes": attributes}
        if toxic is not None:
            body["name"] = toxic
        if toxicity is not None:
            body["toxicity"] = toxicity
        name = toxic or f"{kind}_{stream}"
        if proxy not in self.model:
            self.call("POST", f"/proxies/{proxy}/toxics", body, 404)
            return
        toxics = self.model[proxy]["toxics"]
        if any(t["name"] == name for t in toxics):
            self.call("POST", f"/proxies/{proxy}/toxics", body, 409)
            return
        shown = self.call("POST", f"/proxies/{proxy}/toxics", body, 200)
        full = dict(VALID_DEFAULTS[kind], **attributes)
        expected = {"name": name, "type": kind, "stream": stream, "attributes": full,
                    "toxicity": 1.0 if toxicity is None else toxicity}
        assert shown == expected
        toxics.append(expected)

    @rule(proxy=NAMES, bad=INVALID)
    def add_bad_toxic(self, proxy: str, bad: tuple[str, dict[str, Any]]) -> None:
        body = {"type": bad[0], "name": "bad", "attributes": bad[1]}
        self.call("POST", f"/proxies/{proxy}/toxics", body, 400 if proxy in self.model else 404)

    @rule(proxy=NAMES, index=st.integers(0, 3), toxicity=st.sampled_from([0.0, 0.25, 1.0]))
    def update_toxic(self, proxy: str, index: int, toxicity: float) -> None:
        toxics = self.model.get(proxy, {}).get("toxics", [])
        if not toxics:
            self.call("POST", f"/proxies/{proxy}/toxics/t9", {"toxicity": toxicity},
                      404)
            return
        toxic = toxics[index % len(toxics)]
        shown = self.call("POST", f"/proxies/{proxy}/toxics/{toxic['name']}",
                          {"toxicity": toxicity}, 200)
        toxic["toxicity"] = toxicity
        assert shown == toxic

    @rule(proxy=NAMES, index=st.integers(0, 3))
    def remove_toxic(self, proxy: str, index: int) -> None:
        toxics = self.model.get(proxy, {}).get("toxics", [])
        if not toxics:
            self.call("DELETE", f"/proxies/{proxy}/toxics/t9", expect=404)
            return
        toxic = toxics.pop(index % len(toxics))
        self.call("DELETE", f"/proxies/{proxy}/toxics/{toxic['name']}", expect=204)

    # --- traffic ----------------------------------------------------------------------------
    @rule(name=NAMES)
    def connect(self, name: str) -> None:
        proxy = self.model.get(name)
        if proxy is None or not proxy["enabled"] or len(self.clients) >= 12:
            return
        port = int(proxy["listen"].rsplit(":", 1)[1])
        client = socket.create_connection((LOOPBACK, port), timeout=2)
        self.clients.append(client)
        if not proxy["toxics"] and proxy["upstream"] == self.echo:
            client.sendall(b"ping")
            assert client.recv(16) == b"ping"

    # --- checks -----------------------------------------------------------------------------
    @invariant()
    def api_matches_model(self) -> None:
        shown = self.call("GET", "/proxies", expect=200)
        expected = {}
        for name, proxy in self.model.items():
            ordered = sorted(proxy["toxics"], key=lambda t: t["stream"] != "upstream")
            expected[name] = dict(proxy, toxics=ordered)
        assert shown == expected

    @invariant()
    def one_listener_per_enabled_proxy(self) -> None:
        enabled = {int(p["listen"].rsplit(":", 1)[1]) for p in self.model.values()
                   if p["enabled"]}
        assert _listening_ports() - self.listening_before == enabled

    def teardown(self) -> None:
        for name in list(self.model):
            self.call("DELETE", f"/proxies/{name}", expect=204)
        for client in self.clients:
            client.close()
        self.http.close()
        deadline = time.monotonic() + 3
        while _socket_fds() > self.sockets_before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _socket_fds() <= self.sockets_before, "sockets leaked"
        assert _listening_ports() - self.listening_before == set(), "\n".join(self.log)


VALID_DEFAULTS: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0}, "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0}, "timeout": {"timeout": 0}, "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0}, "limit_data": {"bytes": 0},
    "noop": {},
}


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts sockets in /proc")
def test_api_sequences_match_the_model(env: dict[str, Any]) -> None:
    ApiMachine.api, ApiMachine.echo = env["api"], env["echo"]
    run_state_machine_as_test(ApiMachine, settings=settings(
        max_examples=40, stateful_step_count=25, deadline=None,
        suppress_health_check=list(HealthCheck)))
