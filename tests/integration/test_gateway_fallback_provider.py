"""The reference gateway's fallback chain against the real LLM provider (docker/llm-provider,
two instances as processes on 127.0.0.1), judged by what the providers journalled: who got
each request id, what it answered, how the stream ended on its side."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.test_reference_services import (
    GATEWAY_APP,
    HTTP_TIMEOUT_S,
    REPO,
    Service,
    sse_data,
    start_service,
)

PROVIDER_APP = REPO / "docker" / "llm-provider" / "app.py"
CHAT = "/v1/chat/completions"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def _start(script: Path, **env: str) -> Service:
        started.append(start_service(script, tmp_path, None, **env))
        return started[-1]

    yield _start
    for service in started:
        service.stop()


def provider(start: Any, name: str, rules: list[dict[str, Any]] | None = None) -> Service:
    script = {"name": name, "tokens": 6, "first_token_delay": "10ms", "token_delay": "5ms",
              "rules": rules or []}
    return start(PROVIDER_APP, CHAOS_LLM_SCRIPT=json.dumps(script))


def journal(service: Service) -> list[dict[str, Any]]:
    doc = requests.get(f"{service.url}/journal", timeout=HTTP_TIMEOUT_S).json()
    return list(doc["attempts"])


def chat(gateway: Service, rid: str, stream: bool = False) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
            "user": rid, "stream": stream}
    return requests.post(gateway.url + CHAT, json=body, timeout=HTTP_TIMEOUT_S)


def test_a_429_with_retry_after_ms_is_served_by_the_fallback_until_it_passed(start: Any) -> None:
    a = provider(start, "provider-a", [{"when": {"requests": "1"},
                                        "do": {"status": 429, "retry_after": "1500ms",
                                               "retry_after_format": "ms"}}])
    b = provider(start, "provider-b")
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, FALLBACK_URLS=b.url)
    first = time.monotonic()
    assert [chat(gateway, f"r{i}").status_code for i in range(3)] == [200, 200, 200]
    assert [(r["rid"], r["status"]) for r in journal(a)] == [("r0", 429)]
    assert [r["rid"] for r in journal(b)] == ["r0", "r1", "r2"]
    time.sleep(max(0.0, first + 1.6 - time.monotonic()))
    assert chat(gateway, "r3").status_code == 200
    assert [(r["rid"], r["status"]) for r in journal(a)][-1] == ("r3", 200)


def test_late_first_token_and_mid_stream_cut_as_the_providers_saw_them(start: Any) -> None:
    a = provider(start, "provider-a", [
        {"when": {"requests": "1"}, "do": {"first_token_delay": "3s"}},
        {"when": {"requests": "2"}, "do": {"cut_after": 2, "cut_with": "fin"}},
    ])
    b = provider(start, "provider-b")
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, FALLBACK_URLS=b.url,
                    GATEWAY_FIRST_TOKEN_TIMEOUT="500")
    with requests.post(gateway.url + CHAT, stream=True, timeout=HTTP_TIMEOUT_S, json={
            "model": "gpt-4o-mini", "messages": [], "user": "late", "stream": True}) as late:
        events = sse_data(late)
    assert events[-1] == "[DONE]"
    with requests.post(gateway.url + CHAT, stream=True, timeout=HTTP_TIMEOUT_S, json={
            "model": "gpt-4o-mini", "messages": [], "user": "cut", "stream": True}) as cut:
        events = sse_data(cut)
    assert "[DONE]" not in events and "error" in json.loads(events[-1])
    seen_a = {r["rid"]: r["ended"] for r in journal(a)}
    assert seen_a == {"late": "gateway_closed", "cut": "cut"}
    assert [(r["rid"], r["ended"]) for r in journal(b)] == [("late", "complete")]
