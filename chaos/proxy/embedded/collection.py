"""The set of proxies and the operations the control API performs on it.

Mutations are serialised by one lock: they await listener start/stop, and two
concurrent requests for the same name must not both pass the existence check.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chaos.proxy.embedded.attempts import tap_default
from chaos.proxy.embedded.errors import (
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    ApiError,
    bad_request,
    check_name,
)
from chaos.proxy.embedded.proxy import DIAL_TIMEOUT, Proxy, check_upstream

DEFAULT_LISTEN = "127.0.0.1:0"


def _fields(body: object, base: Proxy | None = None) -> dict[str, Any]:
    """Proxy fields from a request body; missing or null fields keep their value
    on update and take the real server's default on create (Go's decoder)."""
    if not isinstance(body, dict):
        raise bad_request("bad request body: expected a JSON object")
    name = body.get("name") if base is None else base.name
    if not isinstance(name, str) or not name:
        raise bad_request("missing required field: name")
    listen = body.get("listen") or (base.listen if base else DEFAULT_LISTEN)
    if not isinstance(listen, str):
        raise bad_request("listen must be a string like 127.0.0.1:0")
    upstream = check_upstream(body.get("upstream") or (base.upstream if base else None))
    enabled = body.get("enabled")
    if enabled is None:
        enabled = base.enabled if base else True
    if not isinstance(enabled, bool):
        raise bad_request("enabled must be true or false")
    return {"name": check_name(name), "listen": listen, "upstream": upstream,
            "enabled": enabled}


class Collection:
    def __init__(self, dial_timeout: float = DIAL_TIMEOUT, tap: bool | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.dial_timeout = dial_timeout
        self.tap = tap_default() if tap is None else tap  # the HTTP tap on new proxies
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError(PROXY_NOT_FOUND, 404) from None

    async def _add(self, spec: dict[str, Any]) -> Proxy:
        proxy = Proxy(spec["name"], spec["listen"], spec["upstream"], self.dial_timeout,
                      tap=self.tap)
        if spec["enabled"]:
            await proxy.start()  # a listen failure leaves nothing behind, as upstream
        self.proxies[proxy.name] = proxy
        return proxy

    async def create(self, body: object) -> Proxy:
        spec = _fields(body)
        async with self.lock:
            if spec["name"] in self.proxies:
                raise ApiError(PROXY_EXISTS, 409)
            return await self._add(spec)

    async def update(self, name: str, body: object) -> Proxy:
        async with self.lock:
            proxy = self.get(name)
            spec = _fields(body, proxy)
            if spec["listen"] != proxy.listen or spec["upstream"] != proxy.upstream:
                await proxy.stop()
                proxy.listen, proxy.upstream = spec["listen"], spec["upstream"]
            if spec["enabled"]:
                await proxy.start()
            else:
                await proxy.stop()
            return proxy

    async def remove(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            del self.proxies[name]
            await proxy.stop()

    async def populate(self, body: object) -> list[Proxy]:
        """Create or replace many proxies; unchanged ones keep their connections."""
        if isinstance(body, dict) and "proxies" in body:
            body = body["proxies"]
        if not isinstance(body, list):
            raise bad_request("bad request body: expected a JSON list of proxies")
        specs = [_fields(item) for item in body]
        result: list[Proxy] = []
        async with self.lock:
            for spec in specs:
                existing = self.proxies.get(spec["name"])
                if existing is not None:
                    if existing.listen == spec["listen"] and existing.upstream == spec["upstream"]:
                        result.append(existing)
                        continue
                    del self.proxies[spec["name"]]
                    await existing.stop()
                result.append(await self._add(spec))
        return result

    async def reset(self) -> None:
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.start()
                proxy.reset_toxics()

    async def close_all(self) -> None:
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.stop()
