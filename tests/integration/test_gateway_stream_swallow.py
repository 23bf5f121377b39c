"""GATEWAY_STREAM_ERRORS=swallow, the mutant of scenarios/sse-midstream-error.yaml: the
reference gateway drops a provider's in-band error event and ends the stream cleanly, as
if complete. Against the real LLM provider as processes on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.integration.test_gateway_fallback_provider import CHAT, journal, provider, start
from tests.integration.test_reference_services import (
    GATEWAY_APP,
    HTTP_TIMEOUT_S,
    _load_sibling,
    sse_data,
)

__all__ = ["start"]  # the fixture, imported for pytest

ERROR_MIDSTREAM = [{"when": {}, "do": {"error_after": 3, "error": "overloaded"}}]


def stream(gateway: Any, rid: str, path: str = CHAT, **extra: Any) -> requests.Response:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "user": rid,
        "stream": True,
        **extra,
    }
    return requests.post(gateway.url + path, json=body, timeout=HTTP_TIMEOUT_S)


def test_swallow_is_a_value_of_the_stream_errors_switch() -> None:
    config = _load_sibling("config", GATEWAY_APP.parent)
    swallow = config.GatewayConfig.from_env({"GATEWAY_STREAM_ERRORS": "swallow"})
    assert swallow.stream_errors_swallowed and not swallow.stream_errors_enabled
    for value in ("on", "off", ""):
        other = config.GatewayConfig.from_env({"GATEWAY_STREAM_ERRORS": value})
        assert not other.stream_errors_swallowed
    with pytest.raises(ValueError, match="GATEWAY_STREAM_ERRORS"):
        config.GatewayConfig.from_env({"GATEWAY_STREAM_ERRORS": "swalow"})


def test_the_error_event_reaches_the_client_by_default_and_with_stream_errors_off(start: Any) -> None:
    a = provider(start, "provider-a", ERROR_MIDSTREAM)
    for env in ({}, {"GATEWAY_STREAM_ERRORS": "off"}):
        gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, **env)
        answer = stream(gateway, f"r-{len(env)}")
        assert answer.status_code == 200
        events = sse_data(answer)
        assert json.loads(events[-1])["error"]["code"] == "overloaded", (env, events)


def test_swallow_drops_the_error_event_and_ends_the_stream_cleanly(start: Any) -> None:
    a = provider(start, "provider-a", ERROR_MIDSTREAM)
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="swallow")
    answer = stream(gateway, "r1")  # requests raises on a broken body: this one ends cleanly
    assert answer.status_code == 200
    events = sse_data(answer)
    assert "error" not in answer.text and "[DONE]" not in events
    content = [json.loads(e)["choices"][0]["delta"].get("content") for e in events]
    assert "".join(c for c in content if c) == "tok1 tok2 tok3"  # everything else relayed
    assert [r["rid"] for r in journal(a)] == ["r1"]  # the provider did send its error


def test_swallow_relays_a_healthy_stream_byte_for_byte(start: Any) -> None:
    a = provider(start, "provider-a")
    plain = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="off")
    swallow = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="swallow")
    expected = sse_data(stream(plain, "r1"))
    assert expected[-1] == "[DONE]"
    got = sse_data(stream(swallow, "r2"))
    strip = [json.loads(e) | {"id": "", "created": 0} if e != "[DONE]" else e for e in got]
    want = [json.loads(e) | {"id": "", "created": 0} if e != "[DONE]" else e for e in expected]
    assert strip == want


def test_swallow_drops_anthropics_error_event_too(start: Any) -> None:
    a = provider(start, "provider-a", [{"when": {}, "do": {"error_after": 1}}])
    gateway = start(GATEWAY_APP, UPSTREAM_URL=a.url, GATEWAY_STREAM_ERRORS="swallow")
    answer = requests.post(
        gateway.url + "/v1/messages",
        timeout=HTTP_TIMEOUT_S,
        json={
            "model": "claude-3-5-haiku",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert answer.status_code == 200
    assert "error" not in answer.text and "content_block_delta" in answer.text
