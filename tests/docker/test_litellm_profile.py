"""The LiteLLM profile (docker/gateways/litellm): stock and hardened start healthy offline
(read-only root, no database, no UI), route a non-streaming and a streaming chat completion
to an OpenAI-compatible upstream, and name the pinned version 1.105.7; hardened falls back
to FALLBACK_URLS when UPSTREAM_URL refuses connections, stock answers an error.

The upstream is the reference backend's OpenAI-style /v1/chat/completions on the run's
network. About 90 s once the image is built (LiteLLM takes 15-30 s to start on 2 cores);
the first build downloads about 170 MB of wheels and takes about 2 min.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from chaos.runtime.base_image import ensure_base
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.images import ensure_image, spec_for_build_dir
from chaos.scenario.gateways import load_profile
from chaos.stack.gateway_version import read_version

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "docker" / "gateways" / "litellm"
PROFILE = load_profile(FOLDER / "gateway.yaml")
VERSION = "1.105.7"
UPSTREAM_PORT = 8080
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
        "user": "rid-litellm-1"}
TIMEOUT = (2.0, 30.0)


class Env:
    def __init__(self, run: RunEnvironment, image: str) -> None:
        self.run, self.image = run, image

    def gateway(self, name: str, profile: str, env: dict[str, str]) -> tuple[str, float]:
        """Start one gateway container; (its URL, seconds until its health path answered)."""
        self.run.start(name, self.image, PROFILE.port,
                       {PROFILE.profile_env or "GATEWAY_PROFILE": profile, **env},
                       writable=("/tmp",))
        waited = self.run.wait_healthy(name, PROFILE.health, timeout=120)
        return self.run.services[name].host_url, waited


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    client = docker.from_env(timeout=900)
    client.ping()
    base = ensure_base(client)
    started = time.monotonic()
    image = ensure_image(client, spec_for_build_dir(FOLDER), base)
    print(f"\nlitellm image {image}: ready in {time.monotonic() - started:.1f} s, "
          f"{client.images.get(image).attrs['Size'] / 1e6:.0f} MB")
    backend = ensure_image(client, spec_for_build_dir(ROOT / "docker" / "backend"), base)
    run = RunEnvironment(client, f"test-litellm-{int(time.time())}", "test-litellm-profile")
    try:
        run.create_network()
        run.start("backend", backend, UPSTREAM_PORT, {"STREAM_CHUNK_DELAY_MS": "5"})
        run.wait_healthy("backend", "/healthz", timeout=60)
        yield Env(run, image)
    finally:
        run.teardown()


UPSTREAM = f"http://backend:{UPSTREAM_PORT}"


def chat(url: str, **extra: Any) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", json={**CHAT, **extra}, timeout=TIMEOUT)


def stream_events(url: str) -> list[str]:
    """The data: payloads of one streamed chat completion, read as they arrive."""
    with requests.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True},
                       timeout=TIMEOUT, stream=True) as response:
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[len("data:"):].strip() for line in response.iter_lines(decode_unicode=True)
                if line and line.startswith("data:")]


@pytest.mark.parametrize("profile", sorted(PROFILE.profiles))
def test_a_profile_starts_healthy_routes_chat_and_names_its_version(env: Env,
                                                                      profile: str) -> None:
    assert PROFILE.fallback_env == "FALLBACK_URLS"
    extra = {PROFILE.fallback_env: UPSTREAM} if profile == "hardened" else {}
    url, waited = env.gateway(f"litellm-{profile}", profile,
                              {PROFILE.upstream_env: UPSTREAM, **extra})
    print(f"litellm:{profile} healthy after {waited:.2f} s")

    answer = chat(url)  # no Authorization header: the clients carry no gateway wiring
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0

    events = stream_events(url)
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert sum(1 for text in content if text) >= 3, chunks[:3]
    assert [c["choices"][0].get("finish_reason") for c in chunks
            if c.get("choices")][-1] == "stop"

    container = env.run.container(f"litellm-{profile}")
    version, why = read_version(container, PROFILE.version)
    assert version == VERSION, why
    logs = container.logs().decode("utf-8", "replace")
    assert "Application startup complete" in logs, logs[-2000:]
    assert "Traceback" not in logs, logs[-3000:]


def test_hardened_falls_back_when_the_primary_refuses_and_stock_does_not(env: Env) -> None:
    dead = "http://backend:9"  # nothing listens there: connection refused
    hardened, _ = env.gateway("litellm-fallback", "hardened",
                              {PROFILE.upstream_env: dead,
                               PROFILE.fallback_env or "FALLBACK_URLS": UPSTREAM})
    answer = chat(hardened)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers.get("x-litellm-model-group") == "gpt-4o-mini@fallback-1"
    assert stream_events(hardened)[-1] == "[DONE]"

    stock, _ = env.gateway("litellm-single", "stock", {PROFILE.upstream_env: dead})
    assert chat(stock).status_code >= 500


def test_a_bad_upstream_stops_the_container_with_a_message(env: Env) -> None:
    container = env.run.client.containers.run(
        env.image, detach=True, environment={"UPSTREAM_URL": "backend:8080"},
        labels=env.run.labels)
    try:
        assert container.wait(timeout=30)["StatusCode"] == 2
        assert b"UPSTREAM_URL must be http://host:port" in container.logs()
    finally:
        container.remove(force=True)
