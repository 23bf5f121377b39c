"""The HTTP control API, path for path and status for status like Toxiproxy 2.x.

Handlers only translate HTTP to ``Collection``/``Proxy`` calls; one middleware
turns every refusal into the upstream error JSON and logs one line per call,
so that a scenario's fault timeline can be read back from the server's stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chaos.proxy.embedded.attempts import DEFAULT_LIMIT, parse_settings, tap_off_page
from chaos.proxy.embedded.collection import Collection
from chaos.proxy.embedded.errors import ApiError, bad_request
from chaos.proxy.embedded.toxics import parse_toxic

MARK = "-chaos"  # this server's /version ends so; a real Toxiproxy's never does
VERSION = "2.12.0" + MARK


def is_embedded_version(version: str) -> bool:
    """Whether a Toxiproxy API's ``GET /version`` is this server's: a user may run it
    standalone (``chaos toxiproxy serve``) at TOXIPROXY_URL, HTTP toxics and all."""
    return version.endswith(MARK)
READ_TIMEOUT = 15.0  # seconds for a request's headers, and for its body (upstream: 15 s)
MAX_LINE = 1 << 20  # request line and header bytes, as Go's http.DefaultMaxHeaderBytes

log = logging.getLogger("chaos.proxy.embedded")

COLLECTION: web.AppKey[Collection] = web.AppKey("collection", Collection)
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    response: web.StreamResponse
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        # As upstream: a web page must not drive the API through a visitor's browser.
        response = web.Response(status=403, text="User agent not allowed\n")
        log.info("api %s %s -> 403 (browser)", request.method, request.path_qs)
        return response
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _json(exc.to_json(), exc.status)
        if exc.close:  # answer now, then drop the client instead of reading on (lingering)
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            if request.transport is not None:
                request.transport.close()
    except web.HTTPException as exc:  # unknown path or method: still the error JSON
        message = (exc.reason or "error").lower()
        response = _json({"error": message, "status": exc.status}, exc.status)
    except Exception as exc:  # a bug must not leave the client without an answer
        log.exception("api %s %s failed", request.method, request.path_qs)
        response = _json({"error": f"internal error: {exc}", "status": 500}, 500)
    log.info("api %s %s -> %d (%.1f ms)", request.method, request.path_qs, response.status,
             (time.monotonic() - started) * 1000)
    return response


async def _read(request: web.Request) -> bytes:
    """The body within the read timeout: a slow sender (slowloris) is cut off."""
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            return await request.read()
    except TimeoutError:  # answered, then the connection is closed: its rest is unread
        raise ApiError("bad request body: read timeout", 400, close=True) from None


async def _body(request: web.Request) -> Any:
    # As Go's decoder: bytes that are not UTF-8 become U+FFFD; only bad JSON is refused.
    text = (await _read(request)).decode("utf-8", errors="replace")
    if not text.strip():
        raise bad_request("bad request body: EOF")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise bad_request(f"bad request body: {exc}") from None
    except RecursionError:
        raise bad_request("bad request body: JSON nested too deeply") from None


def _collection(request: web.Request) -> Collection:
    return request.app[COLLECTION]


async def version(request: web.Request) -> web.Response:
    return _json({"version": VERSION})


async def proxy_index(request: web.Request) -> web.Response:
    proxies = _collection(request).proxies
    return _json({name: proxy.to_json() for name, proxy in proxies.items()})


async def proxy_create(request: web.Request) -> web.Response:
    proxy = await _collection(request).create(await _body(request))
    return _json(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    proxies = await _collection(request).populate(await _body(request))
    return _json({"proxies": [p.to_json() for p in proxies]}, 201)


async def reset(request: web.Request) -> web.Response:
    await _collection(request).reset()
    return web.Response(status=204)


async def proxy_show(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    name = request.match_info["proxy"]
    _collection(request).get(name)  # 404 before 400, as upstream
    proxy = await _collection(request).update(name, await _body(request))
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    await _collection(request).remove(request.match_info["proxy"])
    return web.Response(status=204)


async def proxy_stats(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).stats_json())


def _count(request: web.Request, key: str, default: int) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{key}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise bad_request(f"{key}: expected 0 or more, got {value}")
    return value


async def attempts(request: web.Request) -> web.Response:
    """The tap's attempt records after ``after`` (extension; a real server answers 404)."""
    proxy = _collection(request).get(request.match_info["proxy"])
    after = _count(request, "after", 0)
    limit = _count(request, "limit", DEFAULT_LIMIT)
    with_open = request.query.get("open", "") in ("1", "true", "yes")
    if proxy.attempts is None:
        return _json(tap_off_page(after))
    return _json(proxy.attempts.page(after, limit, with_open))


async def tap_settings(request: web.Request) -> web.Response:
    """Which header (and JSON body field) carries the request id on this proxy."""
    proxy = _collection(request).get(request.match_info["proxy"])
    body = await _body(request)
    ring = proxy.attempts
    if ring is None:
        return _json({"tap": False, "request_id_header": None, "request_id_field": None})
    try:
        ring.settings = parse_settings(body, ring.settings)
    except ValueError as exc:
        raise bad_request(f"bad request body: {exc}") from None
    return _json({"tap": True, **ring.settings.to_json()})


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json([t.to_json() for t in proxy.toxic_list()])


async def toxic_create(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    toxic = proxy.add_toxic(parse_toxic(await _body(request)))
    return _json(toxic.to_json())  # 200, not 201: upstream answers so


async def toxic_show(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json(proxy.get_toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    proxy.get_toxic(request.match_info["toxic"])
    toxic = proxy.update_toxic(request.match_info["toxic"], await _body(request))
    return _json(toxic.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    proxy.remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def _close_proxies(app: web.Application) -> None:
    await app[COLLECTION].close_all()


def create_app(collection: Collection | None = None,
               read_timeout: float = READ_TIMEOUT) -> web.Application:
    """The control API as an aiohttp application; closing it stops every proxy."""
    app = web.Application(middlewares=[api_middleware])
    app[COLLECTION] = collection if collection is not None else Collection()
    app[BODY_TIMEOUT] = read_timeout
    app.on_shutdown.append(_close_proxies)
    router = app.router
    router.add_get("/version", version)
    router.add_post("/reset", reset)
    router.add_post("/populate", populate)
    router.add_get("/proxies", proxy_index)
    router.add_post("/proxies", proxy_create)
    router.add_get("/proxies/{proxy}", proxy_show)
    router.add_post("/proxies/{proxy}", proxy_update)
    router.add_patch("/proxies/{proxy}", proxy_update)
    router.add_delete("/proxies/{proxy}", proxy_delete)
    router.add_get("/proxies/{proxy}/stats", proxy_stats)
    router.add_get("/proxies/{proxy}/attempts", attempts)
    router.add_post("/proxies/{proxy}/tap", tap_settings)
    router.add_get("/proxies/{proxy}/toxics", toxic_index)
    router.add_post("/proxies/{proxy}/toxics", toxic_create)
    router.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show)
    router.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    router.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    router.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    return app
