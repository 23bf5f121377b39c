"""The harness's one way to talk to a Toxiproxy server (real or embedded).

``toxiproxy-python`` does the create/destroy/toxic calls, but it keeps the
server's host and port in class attributes of ``APIConsumer``, calls the
``requests`` module without timeouts, and cannot update a toxic. So each call
into it happens under a process-wide lock, with ``APIConsumer`` pointed at this
client's server and ``toxiproxy.api.requests`` swapped for a stand-in that
uses this client's session and timeout; both are restored before the lock is
released. What the library cannot do goes through the same session directly.
Every failure becomes a ``ProxyError`` naming the proxy/toxic and quoting the
server's own error text.

A client can be *scoped* (``names``): on a server the user runs (TOXIPROXY_URL)
a run's proxies carry run-unique names, while faults keep addressing them by the
scenario's names; the client translates, and its ``reset`` touches only its own
proxies, never the user's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
import tenacity
import toxiproxy
import toxiproxy.api as toxiproxy_api
from toxiproxy.exceptions import ProxyExists

from chaos.errors import ProxyError

T = TypeVar("T")

# toxiproxy-python's state is per process, so its use is too.
_LIBRARY_LOCK = threading.RLock()


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy as the server reports it."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProxyInfo:
        return cls(name=data["name"], listen=data["listen"], upstream=data["upstream"],
                   enabled=bool(data["enabled"]), toxics=list(data.get("toxics") or []))

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:300]


class _Transport:
    """Stands in for the ``requests`` module inside ``toxiproxy.api``."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise ProxyError(f"HTTP {response.status_code}: {_error_text(response)}",
                             response.status_code)
        return response

    def get(self, url: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, params=params, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None,
             **kwargs: Any) -> requests.Response:
        return self.request("POST", url, data=data, json=json, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", url, **kwargs)


class ToxiproxyClient:
    """Typed, timeout-bounded access to one Toxiproxy server at ``base_url``."""

    def __init__(self, base_url: str, timeout: float = 5.0,
                 names: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url if "//" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"toxiproxy URL must look like http://host:port, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 8474
        self.base_url = f"http://{parts.netloc}"
        self.timeout = timeout
        self._session = requests.Session()
        self._transport = _Transport(self._session, timeout)
        self.names: dict[str, str] = dict(names or {})  # scenario name -> name on the server

    def server_name(self, name: str) -> str:
        """The proxy's name on the server (the scenario's name unless scoped)."""
        return self.names.get(name, name)

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _library(self) -> Iterator[None]:
        consumer = toxiproxy_api.APIConsumer
        with _LIBRARY_LOCK:
            saved = (consumer.host, consumer.port, toxiproxy_api.requests)
            consumer.host, consumer.port = self.host, self.port
            toxiproxy_api.requests = self._transport
            try:
                yield
            finally:
                consumer.host, consumer.port, toxiproxy_api.requests = saved

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ProxyError as exc:  # the server's answer (HTTP status and error text)
            raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: {exc}",
                             exc.status) from None
        except requests.RequestException as exc:
            raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: {exc}") from exc

    def _lib(self, what: str, call: Callable[[], T]) -> T:
        def locked() -> T:
            with self._library():
                return call()
        return self._guard(what, locked)

    def _http(self, what: str, method: str, path: str, json: Any = None) -> requests.Response:
        return self._guard(what, lambda: self._transport.request(
            method, self.base_url + path, json=json))

    @staticmethod
    def _proxy_obj(name: str) -> Any:
        return toxiproxy.Proxy(name=quote(name, safe=""), upstream="", enabled=True, listen="")

    # --- API --------------------------------------------------------------------------------
    def version(self) -> str:
        response = self._http("version", "GET", "/version")
        try:
            body = response.json()
        except ValueError:  # Toxiproxy before 2.1 answered plain text
            return response.text.strip()
        return str(body.get("version", "")) if isinstance(body, dict) else str(body)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the API answers; ``ProxyError`` with the last failure if not."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_exponential(multiplier=0.05, max=1.0),
            retry=tenacity.retry_if_exception_type(ProxyError),
            reraise=True,
        )
        try:
            retrying(self.version)
        except ProxyError as exc:
            raise ProxyError(f"toxiproxy {self.base_url} not ready after {timeout:g}s: "
                             f"{exc}") from None

    def create_proxy(self, name: str, listen: str, upstream: str,
                     enabled: bool = True) -> ProxyInfo:
        name = self.server_name(name)
        what = f"create proxy {name!r}"
        try:
            proxy = self._lib(what, lambda: toxiproxy.Toxiproxy().create(
                upstream=upstream, name=name, listen=listen, enabled=enabled))
        except ProxyExists:
            raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: "
                             "proxy already exists", 409) from None
        return ProxyInfo(name=proxy.name, listen=proxy.listen, upstream=proxy.upstream,
                         enabled=bool(proxy.enabled), toxics=[])

    def get_proxy(self, name: str) -> ProxyInfo:
        name = self.server_name(name)
        response = self._http(f"get proxy {name!r}", "GET", f"/proxies/{quote(name, safe='')}")
        return ProxyInfo.from_json(response.json())

    def list_proxies(self) -> dict[str, ProxyInfo]:
        body = self._http("list proxies", "GET", "/proxies").json()
        return {name: ProxyInfo.from_json(data) for name, data in body.items()}

    def delete_proxy(self, name: str) -> None:
        name = self.server_name(name)
        self._lib(f"delete proxy {name!r}", lambda: self._proxy_obj(name).destroy())

    def update_proxy(self, name: str, *, upstream: str | None = None,
                     listen: str | None = None, enabled: bool | None = None) -> ProxyInfo:
        """Change a proxy in place (toxics stay); the library has no call for it."""
        name = self.server_name(name)
        body: dict[str, Any] = {}
        if upstream is not None:
            body["upstream"] = upstream
        if listen is not None:
            body["listen"] = listen
        if enabled is not None:
            body["enabled"] = enabled
        response = self._http(f"update proxy {name!r}", "POST",
                              f"/proxies/{quote(name, safe='')}", json=body)
        return ProxyInfo.from_json(response.json())

    def set_enabled(self, name: str, enabled: bool) -> None:
        name = self.server_name(name)
        proxy = self._proxy_obj(name)
        action = proxy.enable if enabled else proxy.disable
        self._lib(f"{'enable' if enabled else 'disable'} proxy {name!r}", action)

    def add_toxic(self, proxy: str, type: str, stream: str = "downstream",
                  toxicity: float = 1.0, attributes: dict[str, Any] | None = None,
                  name: str | None = None) -> str:
        """Add a toxic; returns its name (``<type>_<stream>`` unless given)."""
        toxic_name = name or f"{type}_{stream}"
        proxy = self.server_name(proxy)
        kwargs: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                  "attributes": dict(attributes or {}), "name": toxic_name}
        self._lib(f"add toxic {toxic_name!r} to proxy {proxy!r}",
                  lambda: self._proxy_obj(proxy).add_toxic(**kwargs))
        return toxic_name

    def update_toxic(self, proxy: str, name: str, attributes: dict[str, Any] | None = None,
                     toxicity: float | None = None) -> None:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        proxy = self.server_name(proxy)
        path = f"/proxies/{quote(proxy, safe='')}/toxics/{quote(name, safe='')}"
        self._http(f"update toxic {name!r} of proxy {proxy!r}", "POST", path, json=body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        proxy = self.server_name(proxy)
        self._lib(f"remove toxic {name!r} from proxy {proxy!r}",
                  lambda: self._proxy_obj(proxy).destroy_toxic(quote(name, safe="")))

    def reset(self) -> None:
        """Enable every proxy and remove every toxic; a scoped client only its own proxies."""
        if not self.names:
            self._lib("reset", lambda: toxiproxy.Toxiproxy().reset())
            return
        for name in self.names:  # scenario names; each call maps them
            info = self.get_proxy(name)
            for toxic in info.toxics:
                self.remove_toxic(name, str(toxic["name"]))
            if not info.enabled:
                self.set_enabled(name, True)

    def stats(self, proxy: str) -> dict[str, Any] | None:
        """Counters of the embedded server; None on a server without the extension."""
        proxy = self.server_name(proxy)
        url = f"{self.base_url}/proxies/{quote(proxy, safe='')}/stats"
        what = f"stats of proxy {proxy!r}"
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: {exc}") from exc
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        text = _error_text(response)
        if response.status_code == 404 and text == "proxy not found":
            raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: "
                             f"HTTP 404: {text}", 404)
        if response.status_code in (404, 405):
            return None
        raise ProxyError(f"toxiproxy {self.base_url}: {what} failed: "
                         f"HTTP {response.status_code}: {text}", response.status_code)
