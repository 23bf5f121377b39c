"""The embedded server's control API: paths, status codes, JSON shapes, defaults."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaos.proxy.embedded import ServerThread

LOOPBACK = "127.0.0.1"
UPSTREAM = f"{LOOPBACK}:9"  # never dialled by these tests


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with ServerThread(LOOPBACK, 0) as server:
        yield server.url


@pytest.fixture(autouse=True)
def clean(api: str) -> Iterator[None]:
    yield
    for name in requests.get(f"{api}/proxies", timeout=5).json():
        requests.delete(f"{api}/proxies/{name}", timeout=5)


def _create(api: str, name: str = "p", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "listen": f"{LOOPBACK}:0", "upstream": UPSTREAM, **extra}
    response = requests.post(f"{api}/proxies", json=body, timeout=5)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    message: str = body["error"]
    return message


def test_version(api: str) -> None:
    response = requests.get(f"{api}/version", timeout=5)
    assert response.status_code == 200
    assert response.json()["version"].startswith("2.")


def test_create_shows_real_port_and_shape(api: str) -> None:
    proxy = _create(api)
    assert set(proxy) == {"name", "listen", "upstream", "enabled", "toxics"}
    host, port = proxy["listen"].rsplit(":", 1)
    assert host == LOOPBACK and int(port) > 0
    assert proxy["enabled"] is True and proxy["toxics"] == []
    with socket.create_connection((LOOPBACK, int(port)), timeout=2):
        pass
    assert requests.get(f"{api}/proxies", timeout=5).json() == {"p": proxy}
    assert requests.get(f"{api}/proxies/p", timeout=5).json() == proxy


def test_create_errors(api: str) -> None:
    _create(api)
    assert _error(requests.post(f"{api}/proxies", json={
        "name": "p", "upstream": UPSTREAM}, timeout=5), 409) == "proxy already exists"
    assert "name" in _error(requests.post(f"{api}/proxies", json={"upstream": UPSTREAM},
                                          timeout=5), 400)
    assert "upstream" in _error(requests.post(f"{api}/proxies", json={"name": "q"},
                                              timeout=5), 400)
    _error(requests.post(f"{api}/proxies", data="{not json", timeout=5), 400)
    _error(requests.get(f"{api}/proxies/nope", timeout=5), 404)
    _error(requests.get(f"{api}/no/such/path", timeout=5), 404)


def test_listen_failure_is_500(api: str) -> None:
    taken = socket.socket()
    taken.bind((LOOPBACK, 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        _error(requests.post(f"{api}/proxies", json={
            "name": "busy", "listen": f"{LOOPBACK}:{port}", "upstream": UPSTREAM}, timeout=5), 500)
        assert "busy" not in requests.get(f"{api}/proxies", timeout=5).json()
    finally:
        taken.close()


def test_update_disable_enable_and_delete(api: str) -> None:
    proxy = _create(api)
    port = int(proxy["listen"].rsplit(":", 1)[1])
    updated = requests.post(f"{api}/proxies/p", json={"enabled": False}, timeout=5).json()
    assert updated["enabled"] is False and updated["listen"] == proxy["listen"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=2)
    patched = requests.patch(f"{api}/proxies/p", json={"enabled": True,
                                                      "upstream": f"{LOOPBACK}:10"}, timeout=5)
    assert patched.json()["enabled"] is True
    assert patched.json()["upstream"] == f"{LOOPBACK}:10"
    assert requests.delete(f"{api}/proxies/p", timeout=5).status_code == 204
    _error(requests.delete(f"{api}/proxies/p", timeout=5), 404)


def test_toxic_defaults_and_lifecycle(api: str) -> None:
    _create(api)
    response = requests.post(f"{api}/proxies/p/toxics", json={"type": "latency"}, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"name": "latency_downstream", "type": "latency",
                               "stream": "downstream", "toxicity": 1.0,
                               "attributes": {"latency": 0, "jitter": 0}}
    _error(requests.post(f"{api}/proxies/p/toxics", json={"type": "latency"}, timeout=5), 409)
    up = requests.post(f"{api}/proxies/p/toxics", json={
        "type": "bandwidth", "stream": "upstream", "name": "slow", "toxicity": 0.5,
        "attributes": {"rate": 100}}, timeout=5).json()
    assert up["name"] == "slow" and up["toxicity"] == 0.5
    listed = requests.get(f"{api}/proxies/p/toxics", timeout=5).json()
    assert [t["name"] for t in listed] == ["slow", "latency_downstream"]
    assert requests.get(f"{api}/proxies/p", timeout=5).json()["toxics"] == listed

    updated = requests.post(f"{api}/proxies/p/toxics/latency_downstream",
                            json={"attributes": {"latency": 250}}, timeout=5)
    assert updated.status_code == 200
    assert updated.json()["attributes"] == {"latency": 250, "jitter": 0}
    toxicity = requests.post(f"{api}/proxies/p/toxics/latency_downstream",
                             json={"toxicity": 0.25}, timeout=5).json()
    assert toxicity["toxicity"] == 0.25 and toxicity["attributes"]["latency"] == 250
    assert requests.get(f"{api}/proxies/p/toxics/latency_downstream",
                        timeout=5).json() == toxicity

    assert requests.delete(f"{api}/proxies/p/toxics/slow", timeout=5).status_code == 204
    _error(requests.delete(f"{api}/proxies/p/toxics/slow", timeout=5), 404)
    _error(requests.get(f"{api}/proxies/p/toxics/slow", timeout=5), 404)
    _error(requests.post(f"{api}/proxies/nope/toxics", json={"type": "noop"}, timeout=5), 404)


@pytest.mark.parametrize(("body", "words"), [
    ({"type": "latency", "attributes": {"latency": -1}}, ["latency", ">= 0"]),
    ({"type": "latency", "attributes": {"latency": "100"}}, ["latency", "number"]),
    ({"type": "latency", "attributes": {"latency": 1.5}}, ["whole"]),
    ({"type": "bandwidth", "attributes": {"rate": -1}}, ["rate", ">= 0"]),  # crashes upstream
    ({"type": "slicer", "attributes": {"average_size": 0}}, ["average_size", ">= 1"]),
    ({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
     ["size_variation"]),
    ({"type": "slicer", "attributes": {"size_variation": 4}}, ["size_variation"]),
    ({"type": "latency", "toxicity": "all"}, ["toxicity"]),
    ({"type": "latency", "stream": "sideways"}, ["stream"]),
    ({"type": "latency", "stream": ""}, ["stream"]),
    ({"type": "teleport"}, ["invalid toxic type"]),
    ({"type": "latency", "attributes": [1]}, ["attributes", "object"]),
])
def test_bad_toxics_are_400(api: str, body: dict[str, Any], words: list[str]) -> None:
    _create(api)
    message = _error(requests.post(f"{api}/proxies/p/toxics", json=body, timeout=5), 400)
    for word in words:
        assert word in message
    assert requests.get(f"{api}/proxies/p/toxics", timeout=5).json() == []


def test_bad_toxic_update_is_400_and_keeps_old(api: str) -> None:
    _create(api)
    requests.post(f"{api}/proxies/p/toxics", json={"type": "latency",
                                                   "attributes": {"latency": 5}}, timeout=5)
    _error(requests.post(f"{api}/proxies/p/toxics/latency_downstream",
                         json={"attributes": {"jitter": -5}}, timeout=5), 400)
    _error(requests.post(f"{api}/proxies/p/toxics/nope", json={}, timeout=5), 404)
    toxic = requests.get(f"{api}/proxies/p/toxics/latency_downstream", timeout=5).json()
    assert toxic["attributes"] == {"latency": 5, "jitter": 0}


def test_populate_and_reset(api: str) -> None:
    _create(api, "keep")
    keep = requests.get(f"{api}/proxies/keep", timeout=5).json()
    body = [{"name": "keep", "listen": keep["listen"], "upstream": UPSTREAM},
            {"name": "new", "listen": f"{LOOPBACK}:0", "upstream": UPSTREAM}]
    response = requests.post(f"{api}/populate", json=body, timeout=5)
    assert response.status_code == 201
    names = [p["name"] for p in response.json()["proxies"]]
    assert names == ["keep", "new"]
    assert response.json()["proxies"][0]["listen"] == keep["listen"]
    _error(requests.post(f"{api}/populate", json={"name": "x"}, timeout=5), 400)

    requests.post(f"{api}/proxies/new/toxics", json={"type": "latency"}, timeout=5)
    requests.post(f"{api}/proxies/keep", json={"enabled": False}, timeout=5)
    assert requests.post(f"{api}/reset", timeout=5).status_code == 204
    proxies = requests.get(f"{api}/proxies", timeout=5).json()
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())


def test_stats_shape(api: str) -> None:
    _create(api)
    stats = requests.get(f"{api}/proxies/p/stats", timeout=5).json()
    assert stats["connections"] == {"total": 0, "active": 0, "dial_failures": 0}
    assert stats["bytes"] == {"upstream": 0, "downstream": 0}
    assert stats["toxics"] == {}
    _error(requests.get(f"{api}/proxies/nope/stats", timeout=5), 404)


# --- what the real server accepts (Go's JSON decoder: null is absent, case-free stream) ------


@pytest.mark.parametrize(("body", "shown"), [
    ({"type": "latency", "stream": "Downstream"},
     {"name": "latency_Downstream", "stream": "Downstream"}),
    ({"type": "latency", "stream": "UPSTREAM", "name": "up"}, {"stream": "UPSTREAM"}),
    ({"type": "bandwidth"}, {"attributes": {"rate": 0}}),
    ({"type": "bandwidth", "attributes": {"rate": 0}}, {"attributes": {"rate": 0}}),
    ({"type": "slicer", "attributes": {"delay": 10}},
     {"attributes": {"average_size": 0, "size_variation": 0, "delay": 10}}),
    ({"type": "latency", "attributes": {"latency": None, "jitter": 3}},
     {"attributes": {"latency": 0, "jitter": 3}}),
    ({"type": "latency", "attributes": {"latency": 5, "extra": 1}},
     {"attributes": {"latency": 5, "jitter": 0}}),
    ({"type": "latency", "toxicity": None, "stream": None}, {"toxicity": 1.0,
                                                             "stream": "downstream"}),
    ({"type": "latency", "toxicity": 2}, {"toxicity": 2.0}),
])
def test_accepted_as_the_real_server_does(api: str, body: dict[str, Any],
                                          shown: dict[str, Any]) -> None:
    _create(api)
    response = requests.post(f"{api}/proxies/p/toxics", json=body, timeout=5)
    assert response.status_code == 200, response.text
    toxic = response.json()
    assert {key: toxic[key] for key in shown} == shown
    assert requests.get(f"{api}/proxies/p/toxics/{toxic['name']}", timeout=5).json() == toxic


def test_null_in_an_update_keeps_the_value(api: str) -> None:
    _create(api)
    requests.post(f"{api}/proxies/p/toxics", json={"type": "latency", "toxicity": 0.25,
                                                   "attributes": {"latency": 7}}, timeout=5)
    response = requests.post(f"{api}/proxies/p/toxics/latency_downstream",
                             json={"toxicity": None, "attributes": {"latency": None}}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["toxicity"] == 0.25
    assert response.json()["attributes"]["latency"] == 7
    # type, stream and name in an update are ignored upstream, not refused
    response = requests.post(f"{api}/proxies/p/toxics/latency_downstream",
                             json={"type": "timeout", "stream": "upstream"}, timeout=5)
    assert response.status_code == 200, response.text
    assert (response.json()["type"], response.json()["stream"]) == ("latency", "downstream")


def test_enabled_null_is_absent(api: str) -> None:
    assert _create(api, enabled=None)["enabled"] is True
    requests.post(f"{api}/proxies/p", json={"enabled": False}, timeout=5)
    response = requests.post(f"{api}/proxies/p", json={"enabled": None}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False


@pytest.mark.parametrize("data", [
    b"\xff\xfe\x00garbage",
    b"[" * 1000 + b"]" * 1000,
    b'{"name": "deep", "upstream": "127.0.0.1:9", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
])
def test_undecodable_bodies_are_400(api: str, data: bytes) -> None:
    response = requests.post(f"{api}/proxies", data=data, timeout=5)
    assert "bad request body" in _error(response, 400)


def test_non_utf8_bytes_in_a_string_are_replaced_as_go_does(api: str) -> None:
    body = b'{"name": "caf\xe9", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}'
    response = requests.post(f"{api}/proxies", data=body, timeout=5)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "caf\ufffd"


def test_long_names_can_be_fetched_and_deleted(api: str) -> None:
    name = "n" * 20_000  # past aiohttp's default 8 KB request line
    _create(api, name)
    assert requests.get(f"{api}/proxies/{name}", timeout=5).json()["name"] == name
    toxic = {"type": "noop", "name": "t" * 20_000}
    assert requests.post(f"{api}/proxies/{name}/toxics", json=toxic, timeout=5).ok
    assert requests.get(f"{api}/proxies/{name}/toxics/{'t' * 20_000}", timeout=5).ok
    assert requests.delete(f"{api}/proxies/{name}", timeout=5).status_code == 204


def test_names_too_long_for_a_url_are_refused_at_create(api: str) -> None:
    body = {"name": "n" * 300_000, "upstream": UPSTREAM}
    assert "too long" in _error(requests.post(f"{api}/proxies", json=body, timeout=5), 400)
    _create(api)
    toxic = {"type": "noop", "name": "\u00e9" * 100_000}  # 600 KB percent-encoded
    response = requests.post(f"{api}/proxies/p/toxics", json=toxic, timeout=5)
    assert "too long" in _error(response, 400)
    assert requests.get(f"{api}/proxies", timeout=5).json().keys() == {"p"}


@pytest.fixture(scope="module")
def quick_api() -> Iterator[ServerThread]:
    with ServerThread(LOOPBACK, 0, read_timeout=0.5) as server:
        yield server


def _closed_within(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.settimeout(limit + 2)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data, time.monotonic() - started


def test_slow_partial_headers_are_timed_out(quick_api: ServerThread) -> None:
    with socket.create_connection((LOOPBACK, quick_api.port), timeout=5) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # dribbling bytes does not extend the deadline
            time.sleep(0.15)
            sock.sendall(b"X-A: b\r\n")
        data, elapsed = _closed_within(sock, 0.5)
    assert data == b"" and elapsed < 1.5


def test_slow_body_is_timed_out(quick_api: ServerThread) -> None:
    with socket.create_connection((LOOPBACK, quick_api.port), timeout=5) as sock:
        sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        data, elapsed = _closed_within(sock, 0.5)
    assert elapsed < 1.5
    assert data.startswith(b"HTTP/1.1 400") and b"read timeout" in data
    assert requests.get(f"{quick_api.url}/version", timeout=5).ok  # the server lives on


def test_browsers_are_refused_as_upstream_does(api: str) -> None:
    headers = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
    response = requests.post(f"{api}/proxies", json={"name": "evil", "upstream": UPSTREAM},
                             headers=headers, timeout=5)
    assert response.status_code == 403
    assert response.text == "User agent not allowed\n"
    assert requests.get(f"{api}/proxies", timeout=5).json() == {}
