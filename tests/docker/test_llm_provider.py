"""The LLM provider's image (docker/llm-provider): built as `make setup` builds it, started
as the Docker stack starts a service with `llm:` (its script in CHAOS_LLM_SCRIPT, a
read-only root), scripted to answer the first 2 requests 429 with Retry-After and then
cut a stream after 3 tokens: what a client sees, and what /journal records. Then the
`llm` fault installs rules through the control API for a while, and an RST cut reaches a
client on the container's own address (Docker's userland proxy would turn it into a FIN).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from chaos.faults.base import FaultContext
from chaos.faults.registry import inject
from chaos.runtime.base_image import ensure_base
from chaos.runtime.control import image_writable
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.images import ensure_image, spec_for_build_dir
from chaos.scenario.llm_provider import SCRIPT_ENV, ProviderSpec, script_env
from chaos.scenario.model import LlmFault

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080
SPEC = ProviderSpec.model_validate({
    "tokens": 6, "first_token_delay": "10ms", "token_delay": "5ms",
    "rules": [{"when": {"requests": "2"}, "do": {"status": 429, "retry_after": "1s"}},
              {"when": {"stream": True, "requests": "1"}, "do": {"cut_after": 3}},
              {"when": {"header": {"X-Cut": "rst"}}, "do": {"cut_after": 2, "cut_with": "rst"}}]})


def chat(url: str, rid: str, stream: bool = False, **kwargs: Any) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 20}],
            "stream": stream, "user": rid}
    return requests.post(f"{url}/v1/chat/completions", json=body, stream=stream,
                         timeout=(2, 10), **kwargs)


def read_stream(response: requests.Response, lines: list[str]) -> None:
    for line in response.iter_lines(decode_unicode=True):
        if line:
            lines.append(line)


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[RunEnvironment, str]]:
    client = docker.from_env(timeout=600)
    client.ping()
    image = ensure_image(client, spec_for_build_dir(ROOT / "docker" / "llm-provider"),
                         ensure_base(client))
    run = RunEnvironment(client, f"test-llm-provider-{int(time.time())}", "test-llm-provider")
    try:
        run.create_network()
        env = {SCRIPT_ENV: script_env("provider-a", SPEC, "X-Chaos-Request-Id", "user")}
        run.start("provider-a", image, PORT, env, memory="128m",
                  writable=image_writable(client, image))
        run.wait_healthy("provider-a", "/healthz", timeout=60)
        yield run, run.services["provider-a"].host_url
    finally:
        run.teardown()


def test_429_with_retry_after_then_a_stream_cut_after_3_tokens(
        provider: tuple[RunEnvironment, str]) -> None:
    _, url = provider
    first, second = chat(url, "rid-1"), chat(url, "rid-2")
    for answer in (first, second):
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
        assert answer.json()["error"]["code"] == "rate_limit_exceeded"
        assert answer.headers["X-Chaos-Provider"] == "provider-a"
    lines: list[str] = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError), \
            chat(url, "rid-3", stream=True) as stream:
        assert stream.status_code == 200
        read_stream(stream, lines)
    tokens = [line for line in lines if '"content":"' in line and '"content":""' not in line]
    assert len(tokens) == 3 and "[DONE]" not in " ".join(lines)
    assert '"finish_reason":"stop"' not in " ".join(lines)
    normal = chat(url, "rid-4").json()
    assert normal["choices"][0]["message"]["content"] == "tok1 tok2 tok3 tok4 tok5 tok6"
    records = requests.get(f"{url}/journal", timeout=5).json()["attempts"]
    assert [r["rid"] for r in records] == ["rid-1", "rid-2", "rid-3", "rid-4"]
    assert [r["status"] for r in records] == [429, 429, 200, 200]
    assert [r["retry_after"] for r in records] == ["1", "1", None, None]
    assert [r["rule"] for r in records] == ["script#0", "script#0", "script#1", None]
    assert [r["ended"] for r in records] == ["complete", "complete", "cut", "complete"]
    assert [r["tokens"] for r in records] == [0, 0, 3, 6]
    assert [r["finish_reason"] for r in records] == [None, None, None, "stop"]
    assert [r["behaviour"] for r in records[1:3]] == ["429 retry_after=1s", "cut_after=3"]
    assert records[2]["stream"] is True and records[2]["events"] == 4  # role chunk + 3
    assert {r["provider"] for r in records} == {"provider-a"}
    assert {r["api"] for r in records} == {"openai"} and records[0]["prompt_tokens"] == 5


def test_the_llm_fault_and_an_rst_cut_on_the_containers_address(
        provider: tuple[RunEnvironment, str]) -> None:
    run, url = provider
    direct = run.services["provider-a"].direct_url(run.prefix)
    fault = LlmFault.model_validate({"service": "provider-a",
                                     "llm": [{"do": {"status": 503, "retry_after": "2s"}}]})
    injected = inject(fault, FaultContext(None, run, lambda name: url), 0)  # type: ignore[arg-type]
    assert [chat(url, f"f{i}").status_code for i in range(2)] == [503, 503]
    assert injected.undo is not None
    injected.undo()
    assert chat(url, "f3").status_code == 200
    with pytest.raises(requests.exceptions.RequestException) as caught, \
            chat(direct, "rst-1", stream=True, headers={"X-Cut": "rst"}) as stream:
        read_stream(stream, [])
    if direct != url:  # the container's address: the RST itself reaches the client
        assert "reset" in repr(caught.value).lower()
    records = requests.get(f"{url}/journal", timeout=5).json()["attempts"]
    faulted = [r for r in records if r["rid"] in ("f0", "f1", "f3", "rst-1")]
    assert [r["rule"] for r in faulted] == ["r1#0", "r1#0", None, "script#2"]
    assert faulted[0]["retry_after"] == "2" and faulted[-1]["ended"] == "cut"
