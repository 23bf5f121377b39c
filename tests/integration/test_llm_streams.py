"""LLM streams read by the real locustfile, against a small aiohttp SSE server on 127.0.0.1.

The server streams OpenAI chat-completion chunks (one token per chunk, a timed gap before
each) and misbehaves per path: a complete stream, one that ends cleanly without
`data: [DONE]`, one that stalls after 2 tokens with the connection open, one that carries an
in-band error event, one reset (TCP RST) mid-way, an Anthropic stream, a 429 with
Retry-After, and a token-aware mix item whose body the locustfile draws per request.
LocustProcess runs the locustfile as the harness runs it; the test reads the records.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from chaos.outcomes import GRACEFUL, INBAND_ERROR, OK, RESET, STREAM_STALLED, TRUNCATED_SUCCESS
from chaos.scenario.model import Load
from tests.fixtures.locust_runs import records_of, run_once

LOOPBACK = "127.0.0.1"
FIRST_TOKEN_S = 0.06
GAP_S = 0.02
TOKENS = 5
LOCUST_SECONDS = 4.0
STALL_BOUND_S = 3.0  # the stalled stream's server side gives up after this (bounded)


def _chunk(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


def _token(i: int) -> bytes:
    return _chunk({"choices": [{"index": 0, "delta": {"content": f"tok{i} "},
                                "finish_reason": None}]})


async def _tokens(response: web.StreamResponse, count: int) -> None:
    await asyncio.sleep(FIRST_TOKEN_S)
    for i in range(1, count + 1):
        if i > 1:
            await asyncio.sleep(GAP_S)
        await response.write(_token(i))


class SseServer:
    """The aiohttp app on its own event loop in a thread; `bodies` keeps each request's
    path, headers' request id and JSON body (what the locustfile sent)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{kind}", self.handle)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, LOOPBACK, 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        body = await request.json()
        self.bodies.append({"kind": kind, "rid": request.headers.get("X-Chaos-Request-Id"),
                            "body": body})
        if kind == "rate-limited":
            return web.json_response({"error": {"type": "rate_limit_exceeded"}}, status=429,
                                     headers={"Retry-After": "2"})
        if kind == "rate-limited-ms":
            return web.json_response({"error": {"type": "rate_limit_exceeded"}}, status=429,
                                     headers={"retry-after-ms": "1500"})
        if kind == "json":  # a non-streaming chat answer
            count = min(int(body["max_tokens"]), TOKENS)
            return web.json_response({
                "object": "chat.completion", "usage": {"completion_tokens": count},
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok"},
                             "finish_reason": "length" if count < TOKENS else "stop"}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if kind == "anthropic":
            await self._anthropic(response)
            return response
        count = TOKENS
        if kind == "mix":
            count = min(int(body["max_tokens"]), TOKENS)
        elif kind in ("stall", "inband-error", "reset"):
            count = 2
        await _tokens(response, count)
        if kind == "stall":
            await asyncio.sleep(STALL_BOUND_S)  # the connection stays open, silent
            return response
        if kind == "inband-error":
            await response.write(_chunk({"error": {"type": "server_error",
                                                   "message": "upstream died mid-stream"}}))
            await response.write_eof()
            return response
        if kind == "reset":
            await asyncio.sleep(0.05)  # the tokens reach the client first
            transport = request.transport
            assert transport is not None
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return response
        await response.write(_chunk({"choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]}))
        if kind == "complete" or kind == "mix":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()  # no-done: a clean end (terminal chunk) without [DONE]
        return response

    @staticmethod
    async def _anthropic(response: web.StreamResponse) -> None:
        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        await event("message_start", {"type": "message_start", "message": {"id": "msg_1"}})
        await event("content_block_start", {"type": "content_block_start", "index": 0})
        await asyncio.sleep(FIRST_TOKEN_S)
        for i in range(1, 4):
            if i > 1:
                await asyncio.sleep(GAP_S)
            await event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": f"t{i}"}})
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn"},
                                      "usage": {"output_tokens": 3}})
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()


PATHS = ("complete", "no-done", "stall", "inband-error", "reset", "anthropic", "rate-limited",
         "rate-limited-ms")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = SseServer()
    server.thread.start()
    assert server.ready.wait(10)
    chat = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    requests = [{"name": p, "method": "POST", "path": f"/{p}", "json": chat, "stream": True}
                for p in PATHS]
    requests.append({"name": "mix", "method": "POST", "path": "/mix",
                     "llm": {"prompt_tokens": [20, 400], "max_tokens": [2, 8], "stream": True}})
    requests.append({"name": "json", "method": "POST", "path": "/json",
                     "llm": {"prompt_tokens": 30, "max_tokens": [2, 8], "stream": False}})
    load = Load(target="gateway", users=6, spawn_rate=50, timeout="500ms",
                connect_timeout="300ms", wait="20ms", requests=requests,
                request_id={"body_field": "user"})
    try:
        run = run_once(load, f"http://{LOOPBACK}:{server.port}",
                       tmp_path_factory.mktemp("llm-locust"), LOCUST_SECONDS, "streams")
        yield {**run, "bodies": list(server.bodies)}
    finally:
        server.stop()


def test_a_complete_stream_is_ok_with_its_token_timings(run: dict[str, Any]) -> None:
    for r in records_of(run, "complete"):
        assert (r["outcome"], r["status"], r["tokens"], r["done"]) == (OK, 200, TOKENS, True), r
        assert r["finish_reason"] == "stop" and r["retry_after"] is None
        assert FIRST_TOKEN_S * 1000 * 0.8 <= r["ttft_ms"] < 2000
        assert len(r["itl_ms"]) == TOKENS - 1 and r["itl_more"] == 0
        # tokens that arrive in one read share a time (a busy client reads late, then several
        # at once), so the bound is on the last token: never before the server sent it
        assert all(0 <= gap < 1000 for gap in r["itl_ms"]), r["itl_ms"]
        last_token_ms = r["ttft_ms"] + sum(r["itl_ms"])
        assert last_token_ms >= (FIRST_TOKEN_S + (TOKENS - 1) * GAP_S) * 1000 * 0.9, r
        # Locust's request time is the whole stream's, not the time to the headers
        assert r["latency_ms"] >= r["ttft_ms"] + sum(r["itl_ms"]) - 1.0, r


def test_a_stream_without_its_terminator_is_truncated_success(run: dict[str, Any]) -> None:
    for r in records_of(run, "no-done"):
        assert (r["outcome"], r["status"], r["tokens"], r["done"]) == (
            TRUNCATED_SUCCESS, 200, TOKENS, False), r
        assert r["finish_reason"] == "stop" and len(r["itl_ms"]) == TOKENS - 1


def test_a_stream_that_stalls_after_two_tokens_is_stream_stalled(run: dict[str, Any]) -> None:
    for r in records_of(run, "stall"):
        assert (r["outcome"], r["tokens"], r["done"]) == (STREAM_STALLED, 2, False), r
        assert r["ttft_ms"] is not None and len(r["itl_ms"]) == 1
        assert r["latency_ms"] >= r["ttft_ms"] + 450  # the 500 ms read timeout ran out


def test_an_inband_error_event_is_inband_error(run: dict[str, Any]) -> None:
    for r in records_of(run, "inband-error"):
        assert (r["outcome"], r["status"], r["tokens"]) == (INBAND_ERROR, 200, 2), r
        assert "server_error" in r["detail"] and r["ttft_ms"] is not None


def test_a_stream_reset_mid_way_is_reset(run: dict[str, Any]) -> None:
    for r in records_of(run, "reset"):
        assert (r["outcome"], r["tokens"], r["done"]) == (RESET, 2, False), r
        assert r["ttft_ms"] is not None and len(r["itl_ms"]) == 1


def test_an_anthropic_stream(run: dict[str, Any]) -> None:
    for r in records_of(run, "anthropic"):
        assert (r["outcome"], r["tokens"], r["done"], r["finish_reason"]) == (
            OK, 3, True, "end_turn"), r
        assert len(r["itl_ms"]) == 2


def test_retry_after_is_kept_on_every_record(run: dict[str, Any]) -> None:
    assert {(r["outcome"], r["status"], r["retry_after"]) for r in records_of(run, "rate-limited")} \
        == {(GRACEFUL, 429, "2")}
    assert {r["retry_after"] for r in records_of(run, "rate-limited-ms")} == {"1500ms"}
    assert all("retry_after" in r for r in run["rows"])


def test_the_token_aware_mix_draws_a_body_per_request(run: dict[str, Any]) -> None:
    records = records_of(run, "mix")
    sent = {b["rid"]: b["body"] for b in run["bodies"] if b["kind"] == "mix"}
    for r in records:
        body = sent[r["rid"]]
        assert body["user"] == r["rid"] and body["stream_options"] == {"include_usage": True}
        assert r["max_tokens"] == body["max_tokens"] and 2 <= r["max_tokens"] <= 8
        assert 20 <= r["prompt_tokens"] <= 400
        assert r["prompt_tokens"] == len(body["messages"][0]["content"]) // 4
        assert (r["outcome"], r["tokens"]) == (OK, min(r["max_tokens"], TOKENS)), r
    assert len({r["prompt_tokens"] for r in records}) > 1


def test_one_record_per_request(run: dict[str, Any]) -> None:
    rids = [r["rid"] for r in run["rows"]]
    assert len(rids) == len(set(rids)) and set(rids) <= {b["rid"] for b in run["bodies"]}
    assert len(rids) > 40 and run["rc"] == 0, run["log"]


def test_a_non_streaming_chat_answer_keeps_usage_and_finish_reason(run: dict[str, Any]) -> None:
    sent = {b["rid"]: b["body"] for b in run["bodies"] if b["kind"] == "json"}
    for r in records_of(run, "json"):
        count = min(r["max_tokens"], TOKENS)
        assert (r["outcome"], r["tokens"], r["prompt_tokens"]) == (OK, count, 30), r
        assert r["finish_reason"] == ("length" if count < TOKENS else "stop")
        assert "ttft_ms" not in r and sent[r["rid"]]["stream"] is False
        assert "stream_options" not in sent[r["rid"]]
