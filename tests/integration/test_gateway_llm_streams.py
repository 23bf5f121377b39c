"""The reference gateway's handling of the LLM stream faults the scenario library needs
(scenarios/llm-truncated-stream, llm-malformed-chunk, llm-context-length), against the real
LLM provider as processes on 127.0.0.1: what the client reads, and what the providers
journalled."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.integration.test_gateway_fallback_provider import CHAT, journal, provider, start
from tests.integration.test_reference_services import GATEWAY_APP, HTTP_TIMEOUT_S, sse_data

__all__ = ["start"]  # the fixture, imported for pytest


def stream(gateway: Any, rid: str) -> list[str]:
    with requests.post(gateway.url + CHAT, stream=True, timeout=HTTP_TIMEOUT_S, json={
            "model": "gpt-4o-mini", "messages": [], "user": rid, "stream": True}) as answer:
        assert answer.status_code == 200
        return sse_data(answer)


def test_a_finished_stream_without_done_gets_the_terminator(start: Any) -> None:
    a = provider(start, "provider-a", [{"when": {}, "do": {"no_done": True}}])
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url)
    events = stream(gateway, "r1")
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    assert not any("error" in e for e in events[:-1])
    naive = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="off")
    assert "[DONE]" not in stream(naive, "r2")


def test_a_malformed_chunk_mid_stream_ends_in_an_error_event_not_relayed(start: Any) -> None:
    a = provider(start, "provider-a", [{"when": {}, "do": {"malformed_after": 3}}])
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url)
    events = stream(gateway, "r1")
    assert "[DONE]" not in events
    assert "error" in json.loads(events[-1])
    for data in events:
        json.loads(data)  # every event the client got is JSON: the broken one was not relayed
    naive = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="off")
    broken = stream(naive, "r2")
    assert any(not data.startswith("{") or data.endswith("tok") for data in broken)


def test_a_malformed_chunk_before_the_first_token_falls_back(start: Any) -> None:
    a = provider(start, "provider-a", [{"when": {}, "do": {"malformed_after": 0}}])
    b = provider(start, "provider-b")
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, FALLBACK_URLS=b.url)
    events = stream(gateway, "r1")
    assert events[-1] == "[DONE]"
    assert [r["rid"] for r in journal(a)] == ["r1"]
    assert [(r["rid"], r["ended"]) for r in journal(b)] == [("r1", "complete")]


def test_a_400_falls_back_only_when_bad_request_is_listed(start: Any) -> None:
    rules = [{"when": {}, "do": {"status": 400, "error": "context_length_exceeded"}}]
    a = provider(start, "provider-a", rules)
    b = provider(start, "provider-b")
    body = {"model": "gpt-4o-mini", "messages": [], "user": "r1"}
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, FALLBACK_URLS=b.url)
    answer = requests.post(gateway.url + CHAT, json=body, timeout=HTTP_TIMEOUT_S)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "context_length_exceeded"
    assert journal(b) == []
    eager = start(GATEWAY_APP, UPSTREAM_URL=a.url, FALLBACK_URLS=b.url,
                  GATEWAY_FALLBACK_ON="rate_limit,bad_request")
    body["user"] = "r2"
    assert requests.post(eager.url + CHAT, json=body, timeout=HTTP_TIMEOUT_S).status_code == 200
    assert [r["rid"] for r in journal(b)] == ["r2"]
