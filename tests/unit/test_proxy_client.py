"""ToxiproxyClient against the embedded server (and against misbehaving servers)."""

from __future__ import annotations

import http.server
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chaos.errors import ProxyError
from chaos.proxy.client import ProxyInfo, ToxiproxyClient
from chaos.proxy.embedded import ServerThread
from tests.fixtures.loopback import http_server, text_handler

LOOPBACK = "127.0.0.1"


class _OldToxiproxy(http.server.BaseHTTPRequestHandler):
    """Answers like the Go server for a path it does not route (no stats)."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"404 page not found\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    yield from http_server(text_handler(b"hello"))


@pytest.fixture(scope="module")
def servers() -> Iterator[list[str]]:
    with ServerThread(LOOPBACK, 0) as first, ServerThread(LOOPBACK, 0) as second:
        yield [first.url, second.url]


@pytest.fixture()
def client(servers: list[str]) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(servers[0], timeout=5) as toxi:
        yield toxi
        for name in toxi.list_proxies():
            toxi.delete_proxy(name)


def _get(proxy: ProxyInfo) -> tuple[str, float]:
    started = time.monotonic()
    response = requests.get(f"http://{LOOPBACK}:{proxy.port}/", timeout=5)
    return response.text, time.monotonic() - started


def test_version_and_wait_ready(client: ToxiproxyClient) -> None:
    client.wait_ready(timeout=5)
    assert client.version().startswith("2.")


def test_proxy_lifecycle(client: ToxiproxyClient, backend: str) -> None:
    info = client.create_proxy("web", f"{LOOPBACK}:0", backend)
    assert isinstance(info, ProxyInfo)
    assert info.name == "web" and info.enabled and info.port > 0 and info.toxics == []
    assert _get(info)[0] == "hello"
    assert client.get_proxy("web") == info
    assert client.list_proxies() == {"web": info}
    client.set_enabled("web", False)
    assert client.get_proxy("web").enabled is False
    with pytest.raises(requests.ConnectionError):
        _get(info)
    client.set_enabled("web", True)
    assert _get(info)[0] == "hello"
    client.delete_proxy("web")
    assert client.list_proxies() == {}


def test_toxics_add_update_remove_reset(client: ToxiproxyClient, backend: str) -> None:
    info = client.create_proxy("web", f"{LOOPBACK}:0", backend)
    name = client.add_toxic("web", "latency", attributes={"latency": 100})
    assert name == "latency_downstream"
    assert _get(info)[1] >= 0.095
    client.update_toxic("web", name, attributes={"latency": 200})
    toxic = client.get_proxy("web").toxics[0]
    assert toxic["attributes"]["latency"] == 200 and toxic["toxicity"] == 1.0
    assert _get(info)[1] >= 0.195
    client.update_toxic("web", name, toxicity=0.0)
    assert _get(info)[1] < 0.15
    client.remove_toxic("web", name)
    custom = client.add_toxic("web", "timeout", stream="upstream", toxicity=0.5,
                              attributes={"timeout": 0}, name="hang")
    assert custom == "hang"
    client.set_enabled("web", False)
    client.reset()
    after = client.get_proxy("web")
    assert after.enabled and after.toxics == []


def test_errors_name_the_object_and_quote_the_server(client: ToxiproxyClient,
                                                      backend: str) -> None:
    client.create_proxy("web", f"{LOOPBACK}:0", backend)
    with pytest.raises(ProxyError, match=r"'latency_downstream'.*'web'.*>= 0"):
        client.add_toxic("web", "latency", attributes={"latency": -1})
    with pytest.raises(ProxyError, match=r"'web'.*already exists"):
        client.create_proxy("web", f"{LOOPBACK}:0", backend)
    client.add_toxic("web", "latency")
    with pytest.raises(ProxyError, match="toxic already exists"):
        client.add_toxic("web", "latency")
    with pytest.raises(ProxyError, match=r"'ghost'.*proxy not found"):
        client.get_proxy("ghost")
    with pytest.raises(ProxyError, match=r"'nope'.*'web'.*toxic not found"):
        client.update_toxic("web", "nope", attributes={"latency": 1})
    with pytest.raises(ProxyError, match="proxy not found"):
        client.remove_toxic("ghost", "latency_downstream")
    with pytest.raises(ProxyError, match="proxy not found"):
        client.stats("ghost")


def test_stats_extension(client: ToxiproxyClient, backend: str) -> None:
    info = client.create_proxy("web", f"{LOOPBACK}:0", backend)
    _get(info)
    stats = client.stats("web")
    assert stats is not None
    assert stats["connections"]["total"] == 1
    assert stats["bytes"]["downstream"] > 0


def test_stats_is_none_on_a_server_without_it() -> None:
    for address in http_server(_OldToxiproxy):
        with ToxiproxyClient(f"http://{address}", timeout=2) as old:
            assert old.stats("web") is None


def test_two_servers_do_not_interfere(servers: list[str], backend: str) -> None:
    clients = [ToxiproxyClient(url) for url in servers]

    def work(index: int) -> list[str]:
        toxi = clients[index]
        for round_ in range(10):
            toxi.create_proxy(f"s{index}-{round_}", f"{LOOPBACK}:0", backend)
            toxi.add_toxic(f"s{index}-{round_}", "noop")
        return sorted(toxi.list_proxies())

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(work, [0, 1]))
    for index, names in enumerate(results):
        assert names == sorted(f"s{index}-{r}" for r in range(10))
        for name in names:
            clients[index].delete_proxy(name)
        clients[index].close()


def test_timeouts_bound_every_call() -> None:
    silent = socket.socket()  # accepts (backlog) but never answers
    silent.bind((LOOPBACK, 0))
    silent.listen()
    try:
        toxi = ToxiproxyClient(f"http://{LOOPBACK}:{silent.getsockname()[1]}", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ProxyError, match="reset"):
            toxi.reset()
        with pytest.raises(ProxyError, match="create proxy"):
            toxi.create_proxy("x", f"{LOOPBACK}:0", f"{LOOPBACK}:9")
        with pytest.raises(ProxyError, match="not ready"):
            toxi.wait_ready(timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_rejects_urls_it_cannot_serve() -> None:
    with pytest.raises(ValueError):
        ToxiproxyClient("https://example.invalid:8474")
    assert ToxiproxyClient(f"{LOOPBACK}:8474").base_url == f"http://{LOOPBACK}:8474"


def test_a_refusal_carries_the_servers_http_status(client: ToxiproxyClient,
                                                   backend: str) -> None:
    """Callers decide on ProxyError.status (ledger: 404 = already gone), never on the text."""
    with pytest.raises(ProxyError) as missing:
        client.delete_proxy("ghost")
    assert missing.value.status == 404
    client.create_proxy("web", f"{LOOPBACK}:0", backend)
    with pytest.raises(ProxyError) as bad:
        client.add_toxic("web", "latency", attributes={"latency": -1})
    assert bad.value.status == 400
    with pytest.raises(ProxyError) as exists:
        client.create_proxy("web", f"{LOOPBACK}:0", backend)
    assert exists.value.status == 409
    with pytest.raises(ProxyError) as stats:
        client.stats("ghost")
    assert stats.value.status == 404


def test_no_answer_is_a_proxy_error_without_status() -> None:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    with ToxiproxyClient(f"http://{LOOPBACK}:{port}", timeout=1.0) as dead, \
            pytest.raises(ProxyError) as refused:
        dead.version()
    assert refused.value.status is None
