"""The reference gateway's provider fallback chains (issue 20), black-box on loopback.

The gateway runs as a real process (docker/gateway/app.py, as the loopback stack runs it)
with UPSTREAM_URL and FALLBACK_URLS pointing at two small aiohttp providers in this
process, each answering as its script says and counting what it received, so every check
is what a client (requests) and the providers saw, never the gateway's own word.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from multidict import CIMultiDict

from tests.integration.test_reference_services import (
    GATEWAY_APP,
    HTTP_TIMEOUT_S,
    Service,
    Starter,
    _load_sibling,
    metric,
    sse_data,
    start_service,
)

CHAT = "/v1/chat/completions"
PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
          "max_tokens": 4}
STREAM = {**PROMPT, "stream": True}
Behaviour = dict[str, Any]


class Provider:
    """An OpenAI-like provider on 127.0.0.1: each request takes the next scripted behaviour
    (then `default`); keys: status, retry_after, code, finish_reason, first_token_delay,
    cut_after (tokens, then the connection is aborted), end_after (tokens, then a clean
    end without finish or [DONE]), stall_after (tokens, then silence)."""

    def __init__(self, name: str, default: Behaviour | None = None) -> None:
        self.name = name
        self.default = default or {}
        self.script: list[Behaviour] = []
        self.seen: list[float] = []  # monotonic arrival time of each chat request
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Provider:
        self._thread.start()
        assert self._ready.wait(5), "provider did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return len(self.seen)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_post(CHAT, self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(time.monotonic())
        body = await request.json()
        do = self.script.pop(0) if self.script else self.default
        headers = {"X-Provider": self.name}
        status = do.get("status", 200)
        if status != 200:
            if "retry_after" in do:
                headers["Retry-After"] = str(do["retry_after"])
            error = {"message": f"{self.name} says {status}", "type": "error",
                     "code": do.get("code", "server_error")}
            return web.json_response({"error": error}, status=status, headers=headers)
        if not body.get("stream"):
            answer = {"object": "chat.completion", "provider": self.name,
                      "choices": [{"index": 0, "message": {"role": "assistant",
                                                           "content": do.get("content",
                                                                             "tok1 tok2")},
                                   "finish_reason": do.get("finish_reason", "stop")}]}
            return web.json_response(answer, headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk({"role": "assistant", "content": ""}))
        await asyncio.sleep(do.get("first_token_delay", 0))
        for n in range(1, 5):
            if n - 1 == do.get("cut_after"):
                assert request.transport is not None
                request.transport.abort()
                return response
            if n - 1 == do.get("error_after"):  # the provider's own in-band error event
                await response.write(b'data: {"error": {"type": "server_error"}}\n\n')
                await response.write_eof()
                return response
            if n - 1 == do.get("end_after"):  # a clean end: no finish, no [DONE]
                await response.write_eof()
                return response
            if n - 1 == do.get("stall_after"):
                await asyncio.sleep(5)
            await response.write(_chunk({"content": f"{self.name}{n} "}))
            await asyncio.sleep(0.01)
        await response.write(_chunk({}, finish="stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    doc = {"object": "chat.completion.chunk",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(doc)}\n\n".encode()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    """Gateways for one test, all stopped even if it fails."""
    started: list[Service] = []

    def _start(script: Path, port: int | None = None, **env: str) -> Service:
        started.append(start_service(script, tmp_path, port, **env))
        return started[-1]

    yield _start
    for service in started:
        service.stop()


@pytest.fixture
def providers() -> Iterator[tuple[Provider, Provider]]:
    with Provider("a") as primary, Provider("b") as fallback:
        yield primary, fallback


def gateway(start: Starter, primary: Provider, fallback: Provider | None, **env: str
            ) -> Service:
    if fallback is not None:
        env["FALLBACK_URLS"] = fallback.url
    return start(GATEWAY_APP, UPSTREAM_URL=primary.url, GATEWAY_BACKOFF_MS="5", **env)


def chat(gw: Service, body: dict[str, Any] = PROMPT, headers: dict[str, str] | None = None
         ) -> requests.Response:
    return requests.post(gw.url + CHAT, json=body, headers=headers, timeout=HTTP_TIMEOUT_S)


def served_by(reply: requests.Response) -> str:
    return reply.headers.get("X-Provider", "?")


def stream(gw: Service) -> tuple[requests.Response, list[str]]:
    """One streamed chat: the reply (status and headers) and its data: payloads, read whole."""
    with requests.post(gw.url + CHAT, json=STREAM, stream=True,
                       timeout=HTTP_TIMEOUT_S) as reply:
        return reply, sse_data(reply)


# ---------------------------------------------------------------- rate limits and cooldown


def test_a_429_with_retry_after_falls_back_and_the_primary_cools_down(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"status": 429, "retry_after": 1, "code": "rate_limit_exceeded"}
    gw = gateway(start, primary, fallback)
    first = chat(gw)
    assert first.status_code == 200 and served_by(first) == "b"
    assert first.json()["provider"] == "b"
    for _ in range(3):  # within the Retry-After: the primary is not called at all
        assert served_by(chat(gw)) == "b"
    assert primary.count == 1 and fallback.count == 4
    assert metric(gw, 'gateway_provider_skips_total{reason="cooldown"}') == 3

    time.sleep(max(0.0, primary.seen[0] + 1.1 - time.monotonic()))
    after = chat(gw)
    assert served_by(after) == "b" and primary.count == 2, "tried again once it passed"


def test_fallback_off_gives_the_client_the_primarys_error(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"status": 429, "retry_after": 30, "code": "rate_limit_exceeded"}
    gw = gateway(start, primary, fallback, GATEWAY_FALLBACK="off")
    reply = chat(gw)
    assert reply.status_code == 429 and served_by(reply) == "a"
    assert reply.json()["error"]["code"] == "rate_limit_exceeded"
    held = chat(gw)  # the cooldown still holds: the gateway's own 429, with Retry-After
    assert held.status_code == 429 and int(held.headers["Retry-After"]) >= 1
    assert primary.count == 1 and fallback.count == 0


def test_every_provider_cooling_down_answers_429_with_the_shortest_wait(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"status": 429, "retry_after": 30}
    fallback.default = {"status": 429, "retry_after": 3}
    gw = gateway(start, primary, fallback)
    assert chat(gw).status_code == 429  # both tried: the last one's 429 is relayed
    held = chat(gw)
    assert held.status_code == 429 and held.json()["error"]["type"] == "upstream_rate_limited"
    assert 1 <= int(held.headers["Retry-After"]) <= 3
    assert (primary.count, fallback.count) == (1, 1)


# ---------------------------------------------------------------- 400s and content policy


def test_a_400_is_never_retried_nor_falls_back(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"status": 400, "code": "context_length_exceeded"}
    gw = gateway(start, primary, fallback)
    # Idempotency-Key: the gateway would retry a 5xx of this request on the same provider
    reply = chat(gw, headers={"Idempotency-Key": "k1"})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "context_length_exceeded"
    assert (primary.count, fallback.count) == (1, 0)


def test_content_policy_falls_back(start: Starter,
                                   providers: tuple[Provider, Provider]) -> None:
    primary, fallback = providers
    primary.script = [{"status": 400, "code": "content_policy_violation"},
                      {"finish_reason": "content_filter"}]
    gw = gateway(start, primary, fallback)
    refused = chat(gw)
    assert refused.status_code == 200 and served_by(refused) == "b"
    filtered = chat(gw)
    assert served_by(filtered) == "b"
    assert filtered.json()["choices"][0]["finish_reason"] == "stop"
    assert (primary.count, fallback.count) == (2, 2)

    big = "tok " * 400_000  # 1.6 MB: more than the gateway holds back to judge, relayed whole
    primary.script = [{"content": big}]
    assert chat(gw).json()["choices"][0]["message"]["content"] == big

    alone = gateway(start, primary, None)  # no fallback: the provider's answer as it is
    primary.script = [{"finish_reason": "content_filter"}]
    assert chat(alone).json()["choices"][0]["finish_reason"] == "content_filter"


# ---------------------------------------------------------------- retries, then the next one


def test_retries_on_the_same_provider_first_then_the_next_and_the_breaker_skips(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"status": 503, "code": "overloaded"}
    gw = gateway(start, primary, fallback, GATEWAY_MAX_TRIES="3",
                 GATEWAY_BREAKER_FAILURES="1", GATEWAY_BREAKER_OPEN_MS="30000")
    reply = chat(gw, headers={"Idempotency-Key": "k2"})
    assert served_by(reply) == "b" and reply.headers["X-Gateway-Retries"] == "2"
    assert (primary.count, fallback.count) == (3, 1)
    assert metric(gw, "gateway_breaker_state") == 1  # the primary's, opened by that request
    plain = chat(gw)  # a POST without a key: one try per provider; here the primary is open
    assert served_by(plain) == "b" and primary.count == 3
    assert metric(gw, 'gateway_provider_skips_total{reason="breaker"}') == 1
    port = primary.port
    assert metric(gw, f'gateway_provider_breaker_state{{provider="127.0.0.1:{port}"}}') == 1
    port = fallback.port
    assert metric(gw, f'gateway_provider_breaker_state{{provider="127.0.0.1:{port}"}}') == 0


def test_llm_retries_repeat_a_chat_post_on_the_same_provider_only_when_on(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.script = [{"status": 502}, {"status": 502}]
    once = gateway(start, primary, fallback)
    assert served_by(chat(once)) == "b" and (primary.count, fallback.count) == (1, 1)

    primary.script = [{"status": 502}]
    retrying = gateway(start, primary, fallback, GATEWAY_LLM_RETRIES="on")
    reply = chat(retrying)
    assert served_by(reply) == "a" and reply.headers["X-Gateway-Retries"] == "1"
    assert (primary.count, fallback.count) == (3, 1)


# ---------------------------------------------------------------- streams


def test_a_stream_whose_first_token_is_late_goes_to_the_next_provider(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"first_token_delay": 3}
    gw = gateway(start, primary, fallback, GATEWAY_FIRST_TOKEN_TIMEOUT="400")
    began = time.monotonic()
    reply, events = stream(gw)
    assert served_by(reply) == "b"
    assert time.monotonic() - began < 2.0
    assert events[-1] == "[DONE]" and "b1 " in "".join(events) and "a1" not in "".join(events)
    assert (primary.count, fallback.count) == (1, 1)

    alone = gateway(start, primary, fallback, GATEWAY_FIRST_TOKEN_TIMEOUT="400",
                    GATEWAY_FALLBACK="off")
    late = requests.post(alone.url + CHAT, json=STREAM, timeout=HTTP_TIMEOUT_S)
    assert late.status_code == 504 and late.json()["error"]["type"] == "first_token_timeout"


def test_late_first_tokens_open_the_providers_breaker(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"first_token_delay": 3}
    gw = gateway(start, primary, fallback, GATEWAY_FIRST_TOKEN_TIMEOUT="300",
                 GATEWAY_BREAKER_FAILURES="2", GATEWAY_BREAKER_OPEN_MS="30000")
    for _ in range(3):
        reply = requests.post(gw.url + CHAT, json=STREAM, timeout=HTTP_TIMEOUT_S)
        assert served_by(reply) == "b" and reply.text.rstrip().endswith("[DONE]")
    assert primary.count == 2, "open after two late starts: the third skipped it"
    assert metric(gw, "gateway_breaker_state") == 1


def test_a_stream_cut_after_bytes_reached_the_client_ends_with_an_error_event(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"cut_after": 2}
    gw = gateway(start, primary, fallback)
    reply, events = stream(gw)
    assert reply.status_code == 200
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["type"] == "upstream_disconnected"
    assert "a2 " in "".join(events), "the tokens sent stay; no second provider mid-stream"
    assert fallback.count == 0


def test_a_stream_ended_cleanly_without_finish_or_done_gets_an_error_event(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, _ = providers
    primary.default = {"end_after": 2}
    gw = gateway(start, primary, None)
    _, events = stream(gw)
    assert "a2 " in "".join(events) and "[DONE]" not in events
    assert json.loads(events[-1])["error"]["type"] == "upstream_disconnected"

    primary.default = {"error_after": 2}  # told by the provider: passed on, nothing added
    _, events = stream(gw)
    assert [json.loads(e)["error"]["type"] for e in events if "error" in e] == ["server_error"]

    primary.default = {"end_after": 2}
    naive = gateway(start, primary, None, GATEWAY_STREAM_ERRORS="off")
    _, events = stream(naive)
    assert "error" not in events[-1], "the mutant passes the cut stream on as it came"


def test_a_stream_stalled_after_bytes_reached_the_client_ends_with_an_error_event(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"stall_after": 2}
    gw = gateway(start, primary, fallback, GATEWAY_STREAM_IDLE_TIMEOUT="400")
    began = time.monotonic()
    _, events = stream(gw)
    assert time.monotonic() - began < 2.0, "the idle timeout, not the provider, ended it"
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["type"] == "upstream_timeout"
    assert fallback.count == 0


def test_a_stream_dead_before_its_first_token_falls_back(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, fallback = providers
    primary.default = {"cut_after": 0}
    gw = gateway(start, primary, fallback, GATEWAY_FALLBACK_ON="connection")
    reply, events = stream(gw)
    assert served_by(reply) == "b"
    assert events[-1] == "[DONE]"


# ---------------------------------------------------------------- the gateway's own TPM limit


def test_gateway_tpm_answers_429_with_retry_after(
    start: Starter, providers: tuple[Provider, Provider]
) -> None:
    primary, _ = providers
    gw = gateway(start, primary, None, GATEWAY_TPM="100")
    body = {**PROMPT, "max_tokens": 60}  # ~61 tokens with the prompt
    assert chat(gw, body).status_code == 200
    limited = chat(gw, body)
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["x-ratelimit-limit-tokens"] == "100"
    assert int(limited.headers["x-ratelimit-remaining-tokens"]) < 61
    assert primary.count == 1, "the refused request never reached the provider"
    assert requests.get(gw.url + "/healthz", timeout=HTTP_TIMEOUT_S).status_code == 200


# ---------------------------------------------------------------- configuration


def test_fallback_config_parses_and_refuses_typos() -> None:
    config = _load_sibling("config", GATEWAY_APP.parent)
    default = config.GatewayConfig.from_env({})
    assert default.fallback_urls == () and default.fallback_enabled and default.tpm == 0
    assert "connection" not in default.fallback_on and "content_policy" in default.fallback_on
    chained = config.GatewayConfig.from_env({
        "FALLBACK_URLS": "http://b:8080/, http://c:8080", "GATEWAY_FALLBACK_ON": "rate_limit",
        "GATEWAY_FIRST_TOKEN_TIMEOUT": "1500", "GATEWAY_TPM": "1000"})
    assert chained.fallback_urls == ("http://b:8080", "http://c:8080")
    assert chained.fallback_on == ("rate_limit",) and chained.first_token_timeout_s == 1.5
    assert chained.tpm == 1000
    naive = config.GatewayConfig.from_env({"GATEWAY_RESILIENCE": "off", "GATEWAY_TPM": "9"})
    assert not naive.fallback_enabled and naive.tpm == 0
    patient = config.GatewayConfig.from_env({"GATEWAY_TIMEOUTS": "off",
                                             "GATEWAY_FIRST_TOKEN_TIMEOUT": "500"})
    assert patient.first_token_timeout_s == 0.0
    for bad in ({"GATEWAY_FALLBACK_ON": "rate_limits"}, {"FALLBACK_URLS": "b:8080"},
                {"GATEWAY_FALLBACK": "sometimes"}):
        with pytest.raises(ValueError):
            config.GatewayConfig.from_env(bad)


def test_retry_after_forms() -> None:
    upstream = _load_sibling("upstream", GATEWAY_APP.parent)
    assert upstream.retry_after_seconds(CIMultiDict({"retry-after-ms": "1500"})) == 1.5
    assert upstream.retry_after_seconds(CIMultiDict({"Retry-After": "7"})) == 7.0
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= upstream.retry_after_seconds(CIMultiDict({"Retry-After": soon})) <= 31
    assert upstream.retry_after_seconds(CIMultiDict({"Retry-After": "soon"})) == 1.0


def test_token_bucket_refills_at_tpm_per_minute() -> None:
    limits = _load_sibling("llm_limits", GATEWAY_APP.parent)
    now = [0.0]
    bucket = limits.TokenBucket(600, clock=lambda: now[0])  # 10 tokens/s
    assert bucket.take(500) is None
    refusal = bucket.take(200)
    assert refusal is not None and refusal.retry_after_s == pytest.approx(10.0)
    assert bucket.headers(refusal)["Retry-After"] == "10"
    now[0] = 10.0
    assert bucket.take(200) is None, "after the wait it said, the request fits"
    assert bucket.take(601).too_large
    assert limits.estimate_tokens(json.dumps(
        {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 5}).encode()) == 15
    assert limits.estimate_tokens(b'{"query": 1}') is None



def test_sse_events_fold_crlf_across_chunks_and_hold_a_partial_event() -> None:
    fallback = _load_sibling("fallback", GATEWAY_APP.parent)
    events = fallback.SSEEvents()
    assert events.feed(b"data: a\r\n\r") == []
    assert events.feed(b"\ndata: b\n") == [b"data: a"], "a CRLF split across two chunks"
    assert events.feed(b"\r\ndata: c") == [b"data: b"], "an LF line, then a CRLF blank line"
    assert bytes(events.pending) == b"data: c"
    watch = fallback.StreamWatch()
    for piece in (b'data: {"choices": [{"delta": {"content": "x"}}]}\n', b"\r\n",
                  b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\r\n'):
        watch.feed(piece)
    assert watch.llm and watch.finished and not watch.ended_early


def test_an_error_object_has_one_class_in_a_body_and_in_a_stream() -> None:
    fallback = _load_sibling("fallback", GATEWAY_APP.parent)
    for error, kind in (({"code": "rate_limit_exceeded", "type": "content_filter"}, "content_policy"),
                        ({"code": "content_policy_violation", "type": "x"}, "content_policy"),
                        ({"type": "overloaded_error"}, "overloaded")):
        body = json.dumps({"error": error})
        assert fallback._event_class(body) == (False, kind), error
        if kind == "content_policy":
            assert fallback.classify_status(400, body.encode()) == kind, error
