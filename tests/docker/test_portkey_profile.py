"""The Portkey profile (docker/gateways/portkey): stock and hardened start healthy behind
the profile wiring, route a non-streaming and a streaming chat completion (and Anthropic's
/v1/messages, which reaches the provider as Anthropic's API) to the project's LLM provider
(docker/llm-provider) with no Portkey header from the client, and name version 1.15.2.
Hardened retries a 503 on the same provider then falls back to FALLBACK_URLS, and neither
retries nor falls back on a 400; stock does neither. What reached each provider is read
from its journal (the upstream witness), not from Portkey.

The providers are addressed by their IPs on the run's network: Portkey's custom-host guard
refuses private addresses unless trusted, and the wiring trusts exactly the scenario's
upstreams. About 60 s once the images are built (about 2 min more the first time: npm
fetch, apt, npm ci).
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
    CHAT,
    DETAILS_ONLY,
    ROOT,
    GatewayEnv,
    assert_bad_upstream_stops_the_container,
    assert_routes_chat,
    gateway_env,
)

pytestmark = [pytest.mark.docker, DETAILS_ONLY]

FOLDER = ROOT / "docker" / "gateways" / "portkey"
PROFILE = load_profile(FOLDER / "gateway.yaml")
MESSAGE = {"model": "claude-3-5-haiku", "max_tokens": 20,
           "messages": [{"role": "user", "content": "hello"}]}
TIMEOUT = (2.0, 15.0)
# provider name -> its script (CHAOS_LLM_SCRIPT): "down" answers every request 503,
# "picky" refuses model reject-* with 400 and serves the rest.
PROVIDERS: dict[str, dict[str, Any]] = {
    "provider-a": {"tokens": 12},
    "provider-b": {"tokens": 12},
    "down": {"rules": [{"when": {"model": "*"}, "do": {"status": 503}}]},
    "picky": {"rules": [{"when": {"model": "reject-*"}, "do": {"status": 400}}]},
    "slow": {"tokens": 200, "token_delay": "50ms"},
}
chat = partial(llm_gateways.chat, timeout=TIMEOUT)
stream_events = partial(llm_gateways.stream_events, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def env() -> Iterator[GatewayEnv]:
    with gateway_env(FOLDER, PROFILE, PROVIDERS, docker_timeout=600, health_timeout=60) as env:
        yield env


@pytest.mark.parametrize("profile", sorted(PROFILE.profiles))
def test_a_profile_starts_healthy_routes_chat_and_names_its_version(env: GatewayEnv,
                                                                      profile: str) -> None:
    fallback = "provider-b" if profile == "hardened" else None
    url, waited = env.gateway(f"portkey-{profile}", profile, "provider-a", fallback)
    print(f"portkey:{profile} healthy after {waited:.2f} s")
    choices = assert_routes_chat(env, url, profile, TIMEOUT)  # no x-portkey-* header
    assert [c["finish_reason"] for c in choices][-1] == "stop"  # on every chunk

    # Anthropic's API on /v1/messages reaches the provider as Anthropic's API.
    message = requests.post(f"{url}/v1/messages", json={**MESSAGE, "metadata": {}},
                            headers={"anthropic-version": "2023-06-01"}, timeout=TIMEOUT)
    assert message.status_code == 200, message.text[:500]
    assert message.json()["stop_reason"] == "end_turn"
    with requests.post(f"{url}/v1/messages", json={**MESSAGE, "stream": True},
                       timeout=TIMEOUT, stream=True) as response:
        assert response.status_code == 200, response.text[:500]
        kinds = [line[len("event:"):].strip() for line in response.iter_lines(decode_unicode=True)
                 if line and line.startswith("event:")]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    seen = [(a["api"], a["stream"], a["status"])
            for a in env.journal("provider-a") if a["model"] == MESSAGE["model"]]
    assert seen[-2:] == [("anthropic", False, 200), ("anthropic", True, 200)], seen

    version, why = read_version(env.run.container(f"portkey-{profile}"), PROFILE.version)
    assert version == "1.15.2", why


def test_hardened_retries_then_falls_back_on_503_and_stock_does_neither(env: GatewayEnv) -> None:
    hardened, _ = env.gateway("portkey-fallback", "hardened", "down", "provider-b")
    answer = chat(hardened, "fb-plain")
    assert answer.status_code == 200, answer.text[:500]
    assert len(env.attempts("down", "fb-plain")) == 3  # retry.attempts 2: 1 + 2 on the primary
    assert len(env.attempts("provider-b", "fb-plain")) == 1
    assert stream_events(hardened, "fb-stream")[-1] == "[DONE]"
    assert len(env.attempts("provider-b", "fb-stream")) == 1

    stock, _ = env.gateway("portkey-single", "stock", "down")
    assert chat(stock, "single").status_code == 503
    assert len(env.attempts("down", "single")) == 1


def test_hardened_neither_retries_nor_falls_back_on_400(env: GatewayEnv) -> None:
    hardened, _ = env.gateway("portkey-no-retry", "hardened", "picky", "provider-b")
    assert chat(hardened, "bad-1", model="reject-me").status_code == 400
    assert len(env.attempts("picky", "bad-1")) == 1
    assert env.attempts("provider-b", "bad-1") == []


def test_finding_a_client_that_leaves_mid_stream_does_not_stop_the_provider(env: GatewayEnv) -> None:
    """Portkey 1.15.2 reads a stream from the provider to its end after its own client
    left (the provider's journal: ended complete, every token sent); the same holds for a
    request sent to Portkey's :8787 directly, without the wiring. A provider that bills
    by token is paid for answers nobody reads. Pinned so a release that cancels the
    upstream read shows up here."""
    url, _ = env.gateway("portkey-leave", "stock", "slow")
    with requests.post(f"{url}/v1/chat/completions",
                       json={**CHAT, "user": "leaver", "stream": True},
                       timeout=TIMEOUT, stream=True) as response:
        events = (line for line in response.iter_lines(decode_unicode=True)
                  if line.startswith("data:"))
        assert [next(events) for _ in range(3)]  # three chunks arrived, then the client leaves
    left = time.monotonic()
    deadline = left + 12  # 200 tokens at 50 ms: 10 s if the provider kept streaming
    attempts: list[dict[str, Any]] = []
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.2)  # the journal records an attempt once it has ended
        attempts = env.attempts("slow", "leaver")
    [attempt] = attempts
    assert attempt["ended"] == "complete" and attempt["tokens"] == 200, attempt


def test_a_bad_upstream_stops_the_container_with_a_message(env: GatewayEnv) -> None:
    assert_bad_upstream_stops_the_container(env)
