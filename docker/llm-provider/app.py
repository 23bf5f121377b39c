"""A fault-scriptable LLM provider: OpenAI- and Anthropic-compatible, for chaos scenarios.

Endpoints: ``POST /v1/chat/completions`` (OpenAI: a chat completion, or SSE chunks with
one token each, a finish chunk, a usage chunk when ``stream_options.include_usage``, then
``data: [DONE]``), ``POST /v1/messages`` (Anthropic: a message, or message_start,
content_block_start, a content_block_delta per token, content_block_stop, message_delta,
message_stop), ``GET /v1/models``, ``GET /healthz``, ``GET /journal`` (journal.py) and the
control API: ``POST /_chaos/rules`` ``{"rules": [...]}`` -> ``{"id": "r1"}`` (these rules go
before the script's; their counters and windows start now), ``DELETE /_chaos/rules/{id}``,
``GET /_chaos/rules``. Every answer carries ``X-Chaos-Provider: <name>`` (debug only).

Tokens are deterministic words (tok1 tok2 ...); a completion has `tokens` of them, or
max_tokens when that is smaller (finish_reason "length", else "stop"); prompt tokens are
the message characters / 4.

Configured by env: CHAOS_LLM_SCRIPT (JSON: name, models, tokens, first_token_delay,
token_delay, tpm, rules, request_id {header, body_field}: the scenario's `llm:` block; the
language is in script.py, a bad script exits 2 naming the key), PORT (8080), HOST
(0.0.0.0), JOURNAL_SIZE (200000; 0 = off), KEEPALIVE_TIMEOUT_MS (75000).

tpm (tokens per minute, 0 = none): over the last 60 s, prompt + completion tokens of the
requests admitted; a request that would go over is answered 429 with Retry-After (when
enough of the window frees up) and the x-ratelimit-* headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

from aiohttp import web

# isort: split
# Sibling modules: the Dockerfile copies them flat into /app next to app.py.
from journal import ENDED, LLM, SSE_EVENTS, install, journal
from script import (
    MAX_STALL_S,
    Config,
    Do,
    Facts,
    Script,
    ScriptError,
    retry_after_headers,
)
from streams import Answer, error_body, error_class, prompt_tokens, words

LOG = logging.getLogger("llm-provider")
CONFIG_KEY = web.AppKey("config", Config)
SCRIPT_KEY = web.AppKey("script", Script)
TPM_KEY = web.AppKey("tpm", "TokenWindow")
NORMAL = Do()
REQUEST_LIMIT = 10_000  # what x-ratelimit-limit-requests says (the provider counts none)


class TokenWindow:
    """Tokens admitted over the last 60 s, against the tpm limit."""

    WINDOW_S = 60.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent: deque[tuple[float, int]] = deque()
        self.used = 0

    def _expire(self, now: float) -> None:
        while self.spent and self.spent[0][0] <= now - self.WINDOW_S:
            self.used -= self.spent.popleft()[1]

    def admit(self, cost: int, now: float) -> float | None:
        """None: admitted (and counted); else the seconds until it would be."""
        self._expire(now)
        if self.used + cost <= self.limit or not self.spent:
            self.spent.append((now, cost))
            self.used += cost
            return None
        freed, wait = self.limit - self.used, 0.0
        for at, tokens in self.spent:
            freed += tokens
            wait = at + self.WINDOW_S - now
            if freed >= cost:
                break
        return max(wait, 0.001)

    def remaining(self, now: float) -> int:
        self._expire(now)
        return max(self.limit - self.used, 0)


def _headers_lower(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _ratelimit_headers(request: web.Request, failing: bool, reset_s: float) -> dict[str, str]:
    window = request.app[TPM_KEY]
    limit = window.limit if window.limit else 1_000_000
    remaining = window.remaining(time.monotonic()) if window.limit else limit
    reset = f"{max(reset_s, 0.001):g}s"
    return {"x-ratelimit-limit-requests": str(REQUEST_LIMIT),
            "x-ratelimit-remaining-requests": "0" if failing else str(REQUEST_LIMIT - 1),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": str(limit),
            "x-ratelimit-remaining-tokens": "0" if failing else str(remaining),
            "x-ratelimit-reset-tokens": reset}


def _error(api: str, status: int, kind: str, headers: dict[str, str],
           message: str | None = None) -> web.Response:
    return web.json_response(error_body(api, kind, message), status=status, headers=headers)


async def openai_chat(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "openai")


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "anthropic")


async def _serve(request: web.Request, api: str) -> web.StreamResponse:
    config, script = request.app[CONFIG_KEY], request.app[SCRIPT_KEY]
    info: dict[str, Any] = {"provider": config.name, "api": api, "model": None, "stream": False,
                            "rule": None, "behaviour": "normal", "tokens": 0,
                            "finish_reason": None, "prompt_tokens": None}
    request[LLM] = info
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        info["behaviour"] = "400 bad request"
        return _error(api, 400, "invalid_request", {}, "the body must be JSON with messages")
    model = str(body.get("model") or "")
    stream = body.get("stream") is True
    info.update(model=model, stream=stream, prompt_tokens=prompt_tokens(api, body))
    if config.models is not None and model not in config.models:
        info["behaviour"] = "404 unknown model"
        return _error(api, 404, "not_found", {}, f"The model {model!r} does not exist")
    rule = script.decide(Facts(api, model, stream, _headers_lower(request),
                               info["prompt_tokens"]))
    do = rule.do if rule is not None else NORMAL
    info.update(rule=rule.ref if rule is not None else None, behaviour=do.text())
    planned = do.tokens or config.tokens
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    capped = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and (
        0 < max_tokens < planned)
    count = max_tokens if capped else planned
    finish = do.finish_reason or ("length" if capped else "stop")
    headers: dict[str, str] = {}
    if do.failing:
        if do.ratelimit_headers:
            headers.update(_ratelimit_headers(request, True, do.retry_after or 1.0))
        headers.update(retry_after_headers(do, time.time()))
        return _error(api, do.answer_status, error_class(do.answer_status, do.error), headers)
    window = request.app[TPM_KEY]
    if window.limit:
        wait = window.admit(info["prompt_tokens"] + count, time.monotonic())
        if wait is not None:
            info["behaviour"] = f"429 tpm={window.limit}"
            limited = Do(status=429, retry_after=wait)
            headers.update(_ratelimit_headers(request, True, wait))
            headers.update(retry_after_headers(limited, time.time()))
            return _error(api, 429, "rate_limit_exceeded", headers,
                          f"Rate limit reached for tokens per minute: limit {window.limit}")
    if do.ratelimit_headers:
        headers.update(_ratelimit_headers(request, False, 1.0))
    options = body.get("stream_options")
    answer = Answer(api, model, info["prompt_tokens"],
                    include_usage=isinstance(options, dict) and options.get(
                        "include_usage") is True)
    first = config.first_token_delay if do.first_token_delay is None else do.first_token_delay
    gap = config.token_delay if do.token_delay is None else do.token_delay
    if stream:
        return await _stream(request, answer, do, count, finish, first, gap, headers)
    return await _whole(request, answer, do, count, finish, first + gap * max(count - 1, 0),
                        headers)


async def _stall(request: web.Request, do: Do) -> bool:
    """Hold the connection open: True when the stall ends on its own (stall_for)."""
    request[ENDED] = "stalled"
    await asyncio.sleep(do.stall_for if do.stall_for is not None else MAX_STALL_S)
    if do.stall_for is None:
        _close(request, "fin")  # the 300 s bound: still "stalled"
        return False
    del request[ENDED]
    return True


def _close(request: web.Request, how: str) -> None:
    """Close the connection now: a FIN after what was written, or an RST."""
    transport = request.transport
    if transport is None:
        return
    if how == "rst":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


async def _flushed(request: web.Request) -> None:
    """Bounded wait until what was written left the process (before an RST drops it)."""
    transport = request.transport
    for _ in range(100):
        if transport is None or transport.is_closing() or not transport.get_write_buffer_size():
            return
        await asyncio.sleep(0.01)


def _fault_at(do: Do, count: int) -> tuple[str, int] | None:
    """The stream fault and the token it acts before (at most the answer's count)."""
    fault = do.stream_fault
    return None if fault is None else (fault[0], min(fault[1], count))


async def _stream(request: web.Request, answer: Answer, do: Do, count: int, finish: str,
                  first: float, gap: float, headers: dict[str, str]) -> web.StreamResponse:
    info = request[LLM]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache", **headers})
    await response.prepare(request)
    request[SSE_EVENTS] = 0

    async def emit(chunk: bytes) -> None:
        await response.write(chunk)
        request[SSE_EVENTS] += 1

    for event in answer.head():
        await emit(event)
    fault = _fault_at(do, count)
    for i, text in enumerate([*words(count), None]):
        if fault is not None and fault[1] == i:
            kind = fault[0]
            if kind == "stall_after" and not await _stall(request, do):
                return response
            if kind == "cut_after":
                if do.cut_with == "rst":
                    await _flushed(request)
                request[ENDED] = "cut"
                _close(request, do.cut_with)
                return response
            if kind == "error_after":
                await emit(answer.in_stream_error(do.error or "server_error"))
                return response
            if kind == "malformed_after":
                await emit(answer.malformed())
        if text is None:
            break
        await asyncio.sleep(first if i == 0 else gap)
        await emit(answer.token(text))
        info["tokens"] = i + 1
    info["finish_reason"] = finish
    for event in answer.tail(count, finish, done=not do.no_done):
        await emit(event)
    return response


async def _whole(request: web.Request, answer: Answer, do: Do, count: int, finish: str,
                 delay: float, headers: dict[str, str]) -> web.StreamResponse:
    """A non-streamed answer; the stream faults act on its body (a stall before it, a cut
    or malformed body after the text of N tokens, an error object instead of it)."""
    info = request[LLM]
    await asyncio.sleep(delay)
    fault = _fault_at(do, count)
    if fault is not None and fault[0] == "stall_after" and not await _stall(request, do):
        return web.Response(status=200)  # never sent: the connection is closed
    if fault is not None and fault[0] == "error_after":
        body = error_body(answer.api, do.error or "server_error")
        return web.json_response(body, status=200, headers=headers)
    tokens = words(count)
    text = json.dumps(answer.whole("".join(tokens), count, finish))
    if fault is None or fault[0] == "stall_after":
        info.update(tokens=count, finish_reason=finish)
        return web.Response(text=text, content_type="application/json", headers=headers)
    sent = fault[1]
    cut = text.find(tokens[sent]) if sent < count else len(text) - 1
    info["tokens"] = sent
    if fault[0] == "malformed_after":
        return web.Response(text=text[:cut], content_type="application/json", headers=headers)
    data = text.encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[:len(text[:cut].encode())])
    if do.cut_with == "rst":
        await _flushed(request)
    request[ENDED] = "cut"
    _close(request, do.cut_with)
    return response


async def models(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    names = config.models if config.models is not None else ("gpt-4o-mini", "claude-3-5-haiku")
    return web.json_response({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": config.name}
        for name in names]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "provider": request.app[CONFIG_KEY].name})


async def add_rules(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or set(body) != {"rules"}:
        return web.json_response({"error": 'expected {"rules": [...]}'}, status=400)
    try:
        set_id = request.app[SCRIPT_KEY].install(body["rules"])
    except ScriptError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    LOG.info("rule set %s installed: %s", set_id, json.dumps(body["rules"]))
    return web.json_response({"id": set_id})


async def delete_rules(request: web.Request) -> web.Response:
    set_id = request.match_info["id"]
    if not request.app[SCRIPT_KEY].remove(set_id):
        return web.json_response({"error": f"no rule set {set_id}"}, status=404)
    LOG.info("rule set %s removed", set_id)
    return web.json_response({"deleted": set_id})


async def list_rules(request: web.Request) -> web.Response:
    return web.json_response({"rule_sets": request.app[SCRIPT_KEY].shown()})


async def _name_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Chaos-Provider"] = request.app[CONFIG_KEY].name


def build_app(config: Config, journal_size: int = 200_000) -> web.Application:
    app = web.Application(middlewares=[journal], client_max_size=16 * 1024 * 1024)
    install(app, journal_size, config.request_id_header, config.request_id_field)
    app.on_response_prepare.append(_name_header)
    app[CONFIG_KEY] = config
    app[SCRIPT_KEY] = Script(config.rules)
    app[TPM_KEY] = TokenWindow(config.tpm)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/_chaos/rules", add_rules)
    app.router.add_get("/_chaos/rules", list_rules)
    app.router.add_delete("/_chaos/rules/{id}", delete_rules)
    return app


def config_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> Config:
    """CHAOS_LLM_SCRIPT as a Config (ScriptError names the key)."""
    raw = environ.get("CHAOS_LLM_SCRIPT") or "{}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ScriptError(f"CHAOS_LLM_SCRIPT is not JSON: {exc}") from None
    return Config.parse(data)


def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        config = config_from_env()
    except ScriptError as exc:
        print(f"llm-provider: CHAOS_LLM_SCRIPT: {exc}", file=sys.stderr)
        sys.exit(2)
    LOG.info("starting provider %s (%d script rules, tokens=%d, tpm=%d)", config.name,
             len(config.rules), config.tokens, config.tpm)
    # handler_cancellation: a handler whose peer hung up is cancelled at once, so the
    # journal's `end` of an abandoned request is when the gateway gave up on it.
    web.run_app(build_app(config, int(os.environ.get("JOURNAL_SIZE", "200000"))),
                host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")),
                shutdown_timeout=0.3, access_log=None, print=None,
                keepalive_timeout=int(os.environ.get("KEEPALIVE_TIMEOUT_MS", "75000")) / 1000,
                handler_cancellation=True)


if __name__ == "__main__":
    main()
