"""The LiteLLM profile (docker/gateways/litellm): stock and hardened start healthy offline
(read-only root, no database, no UI) with no credentials from the client, route a
non-streaming and a streaming chat completion to the project's LLM provider
(docker/llm-provider) with the request id (OpenAI's `user`) passed through, and name the
pinned version 1.105.7. Hardened retries a 503 on the same provider then falls back to
FALLBACK_URLS; it does not retry a 400 but does fall back on it (LiteLLM's fallbacks
fire on every error class); stock retries a 503 twice (LiteLLM's default) and has no
fallback. Hardened abandons a stream whose first token is late (stream_timeout) and
falls back; stock waits. Anthropic /v1/messages calls reach the OpenAI-compatible provider as chat
completions. What reached each provider is read from its journal (the upstream witness),
not from LiteLLM.

About 2 min once the images are built (LiteLLM takes 12-30 s to start on 2 cores); the
first build downloads about 170 MB of wheels and takes about 2 min more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import requests

from chaos.scenario.gateways import load_profile
from chaos.stack.gateway_version import read_version
from tests.fixtures import llm_gateways
from tests.fixtures.llm_gateways import (
    DETAILS_ONLY,
    ROOT,
    GatewayEnv,
    assert_bad_upstream_stops_the_container,
    assert_routes_chat,
    gateway_env,
)

pytestmark = [pytest.mark.docker, DETAILS_ONLY]

FOLDER = ROOT / "docker" / "gateways" / "litellm"
PROFILE = load_profile(FOLDER / "gateway.yaml")
TIMEOUT = (2.0, 30.0)
VERSION = "1.105.7"
# provider name -> its script (CHAOS_LLM_SCRIPT): "down" answers every request 503,
# "picky" answers every request 400 (a bad request: never worth a retry), "slow" sends its
# first token after 8 s.
PROVIDERS: dict[str, dict[str, Any]] = {
    "provider-a": {"tokens": 12},
    "provider-b": {"tokens": 12},
    "down": {"rules": [{"when": {"model": "*"}, "do": {"status": 503}}]},
    "picky": {"rules": [{"when": {"model": "*"}, "do": {"status": 400}}]},
    "slow": {"tokens": 12, "first_token_delay": "8s"},
}
chat = partial(llm_gateways.chat, timeout=TIMEOUT)
stream_events = partial(llm_gateways.stream_events, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def env() -> Iterator[GatewayEnv]:
    with gateway_env(FOLDER, PROFILE, PROVIDERS, docker_timeout=900, health_timeout=120) as env:
        yield env


@pytest.mark.parametrize("profile", sorted(PROFILE.profiles))
def test_a_profile_starts_healthy_routes_chat_and_names_its_version(env: GatewayEnv,
                                                                      profile: str) -> None:
    fallback = "provider-b" if profile == "hardened" else None
    url, waited = env.gateway(f"litellm-{profile}", profile, "provider-a", fallback)
    print(f"litellm:{profile} healthy after {waited:.2f} s")
    choices = assert_routes_chat(env, url, profile, TIMEOUT)  # no Authorization header
    assert [c.get("finish_reason") for c in choices][-1] == "stop"  # .get: not on every chunk

    version, why = read_version(env.run.container(f"litellm-{profile}"), PROFILE.version)
    assert version == VERSION, why
    logs = env.run.container(f"litellm-{profile}").logs().decode("utf-8", "replace")
    assert "Application startup complete" in logs, logs[-2000:]
    assert "Traceback" not in logs, logs[-3000:]


def test_hardened_retries_then_falls_back_on_503_and_stock_only_retries(env: GatewayEnv) -> None:
    hardened, _ = env.gateway("litellm-fallback", "hardened", "down", "provider-b")
    answer = chat(hardened, "fb-plain")
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers.get("x-litellm-model-group") == "gpt-4o-mini@fallback-1"
    assert len(env.attempts("down", "fb-plain")) == 3  # ServiceUnavailableErrorRetries 2: 1 + 2
    assert len(env.attempts("provider-b", "fb-plain")) == 1
    assert stream_events(hardened, "fb-stream")[-1] == "[DONE]"
    assert len(env.attempts("provider-b", "fb-stream")) == 1

    # Stock has no fallback, but LiteLLM's proxy retries by default (DEFAULT_MAX_RETRIES 2):
    # three attempts on the provider, then its 503 is the client's answer.
    stock, _ = env.gateway("litellm-single", "stock", "down")
    assert chat(stock, "single").status_code == 503
    assert len(env.attempts("down", "single")) == 3


def test_hardened_does_not_retry_a_400_but_falls_back_on_it(env: GatewayEnv) -> None:
    """retry_policy stops the retry; LiteLLM 1.105.7's fallbacks fire on every error class
    (router.async_function_with_fallbacks_common_utils has no per-class switch for the
    generic fallbacks), so the 400 is re-sent to the fallback and answered 200 there: a
    finding the `no_retry_on: [400]` bound reports, not something the profile hides."""
    hardened, _ = env.gateway("litellm-no-retry", "hardened", "picky", "provider-b")
    answer = chat(hardened, "bad-1")
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers.get("x-litellm-attempted-retries") == "0"
    assert answer.headers.get("x-litellm-attempted-fallbacks") == "1"
    assert len(env.attempts("picky", "bad-1")) == 1
    assert len(env.attempts("provider-b", "bad-1")) == 1

    stock, _ = env.gateway("litellm-no-retry-stock", "stock", "picky")
    assert chat(stock, "bad-2").status_code == 400
    assert len(env.attempts("picky", "bad-2")) == 1


def test_hardened_abandons_a_stream_without_a_first_token_and_falls_back(env: GatewayEnv) -> None:
    """stream_timeout 5 s: the stream from "slow" is given up (the provider sees the gateway
    hang up before its first token) and provider-b serves it; stock waits the 8 s out."""
    hardened, _ = env.gateway("litellm-first-token", "hardened", "slow", "provider-b")
    started = time.monotonic()
    assert stream_events(hardened, "ft-1")[-1] == "[DONE]"
    took = time.monotonic() - started
    assert 5.0 <= took < 8.0, took
    [abandoned] = env.attempts("slow", "ft-1")
    assert (abandoned["ended"], abandoned["tokens"]) == ("gateway_closed", 0), abandoned
    assert len(env.attempts("provider-b", "ft-1")) == 1

    stock, _ = env.gateway("litellm-first-token-stock", "stock", "slow")
    started = time.monotonic()
    assert stream_events(stock, "ft-2")[-1] == "[DONE]"
    assert time.monotonic() - started >= 8.0
    [attempt] = env.attempts("slow", "ft-2")
    assert attempt["ended"] == "complete"


def test_anthropic_messages_reach_the_provider_as_chat_completions(env: GatewayEnv) -> None:
    """The profile's upstreams are OpenAI-compatible: an Anthropic /v1/messages call for
    claude-3-5-haiku is answered in Anthropic's shapes after a /v1/chat/completions call
    upstream (the entrypoint's LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES; without
    it LiteLLM calls /v1/responses and the client gets a 404)."""
    url, _ = env.gateway("litellm-anthropic", "stock", "provider-a")
    body = {"model": "claude-3-5-haiku", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}]}
    answer = requests.post(f"{url}/v1/messages", json=body, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text[:500]
    message = answer.json()
    assert (message["type"], message["stop_reason"]) == ("message", "end_turn")
    assert message["content"][0]["text"].split() == [f"tok{i}" for i in range(1, 13)]
    with requests.post(f"{url}/v1/messages", json={**body, "stream": True}, timeout=TIMEOUT,
                       stream=True) as response:
        assert response.status_code == 200, response.text[:500]
        events = [line.split(":", 1)[1].strip() for line in
                  response.iter_lines(decode_unicode=True) if line.startswith("event:")]
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert events.count("content_block_delta") >= 1
    calls = [(a["path"], a["stream"]) for a in env.journal("provider-a")
             if a.get("model") == "claude-3-5-haiku"]
    assert calls == [("/v1/chat/completions", False), ("/v1/chat/completions", True)]


def test_a_bad_upstream_stops_the_container_with_a_message(env: GatewayEnv) -> None:
    assert_bad_upstream_stops_the_container(env)
