"""The token-aware mix: per-request chat bodies (chaos.load.llm_bodies) from the scenario's
`load.requests[].llm` (chaos.scenario.llm_load), and the scenario errors it refuses."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.load.llm_bodies import body_for, estimate_tokens, filler
from chaos.load.request_ids import RequestIds
from chaos.scenario.loader import load_scenario
from tests.fixtures.scenarios import MINIMAL

CHAT = "    - {name: chat, method: POST, path: /v1/chat/completions, %s}"


def _scenario(tmp_path: Path, item: str) -> Path:
    path = tmp_path / "llm.yaml"
    path.write_text(MINIMAL.replace("    - {name: get, path: /}", CHAT % item))
    return path


def test_each_request_gets_a_fresh_body_in_the_ranges() -> None:
    rng = random.Random(7)
    spec = {"api": "openai", "model": "gpt-4o-mini", "prompt_tokens": [20, 2000],
            "max_tokens": [16, 256], "stream": True}
    drawn = [body_for(spec, rng) for _ in range(200)]
    for body, prompt, max_tokens in drawn:
        assert 20 <= prompt <= 2000 and 16 <= max_tokens <= 256
        assert body["max_tokens"] == max_tokens and estimate_tokens(body) == prompt
        assert body["model"] == "gpt-4o-mini" and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["messages"][0]["role"] == "user"
    assert len({p for _, p, _ in drawn}) > 50 and len({m for _, _, m in drawn}) > 50


def test_anthropic_and_non_streaming_bodies() -> None:
    rng = random.Random(1)
    body, prompt, max_tokens = body_for({"api": "anthropic", "model": "claude-3-5-haiku",
                                         "prompt_tokens": [40, 40], "max_tokens": [8, 8],
                                         "stream": True}, rng)
    assert (prompt, max_tokens, body["model"]) == (40, 8, "claude-3-5-haiku")
    assert "stream_options" not in body and body["stream"] is True
    body, _, _ = body_for({"api": "openai", "prompt_tokens": [5, 5], "max_tokens": [3, 3],
                           "stream": False}, rng)
    assert body["stream"] is False and "stream_options" not in body
    assert len(filler(5, rng)) == 20 and len(filler(0, rng)) == 4


def test_the_request_id_goes_into_the_generated_body() -> None:
    body, _, _ = body_for({"prompt_tokens": [5, 5], "max_tokens": [3, 3]}, random.Random(2))
    headers: dict[str, str] = {}
    rid, stamped = RequestIds({"enabled": True, "body_field": "user"}).stamp(headers, body)
    assert stamped["user"] == rid == headers["X-Chaos-Request-Id"] and "user" not in body


def test_the_scenario_language(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path, "llm: {prompt_tokens: [20, 2000], "
                                                 "max_tokens: 64, stream: false}"))
    llm = scenario.load.requests[0].llm
    assert llm is not None and llm.prompt_tokens == [20, 2000] and llm.max_tokens == [64, 64]
    assert (llm.api, llm.model, llm.stream) == ("openai", "gpt-4o-mini", False)


@pytest.mark.parametrize(("item", "message"), [
    ("json: {a: 1}, llm: {max_tokens: 16}", "llm.yaml:12: load.requests[0].llm: llm builds "
                                            "each request's body: give json or llm, not both"),
    ("llm: {max_tokens: [256, 16]}", "llm.yaml:12: load.requests[0].llm.max_tokens"),
    ("llm: {max_token: 16}", "llm.yaml:12: load.requests[0].llm.max_token"),
    ("llm: {api: azure}", "llm.yaml:12: load.requests[0].llm.api"),
    ("llm: {stream: \"yes\"}", "llm.yaml:12: load.requests[0].llm.stream"),
])
def test_bad_llm_items_name_file_line_and_key(tmp_path: Path, item: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_scenario(tmp_path, item))
    assert message in str(caught.value)


def test_token_counts_in_records_and_load_specs_survive_masking() -> None:
    from chaos.report.mask import Masker

    masker = Masker()
    record = '{"rid":"a","tokens":5,"prompt_tokens":229,"max_tokens":4,"retry_after":null}'
    assert masker.text(record) == record  # requests.ndjson stays JSON after the run's masking
    flow = "llm: {prompt_tokens: [20, 2000], max_tokens: 16}"
    assert masker.text(flow) == flow
    assert masker.text('"api_token": "abcdefghij"') == '"api_token": "****"'
    assert masker.text("max_tokens: sk-abcdefghijkl") == "max_tokens: ****"


def test_an_llm_item_is_a_post(tmp_path: Path) -> None:
    path = tmp_path / "get.yaml"
    path.write_text(MINIMAL.replace("    - {name: get, path: /}",
                                    "    - {name: chat, path: /v1/chat/completions, llm: {}}"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "get.yaml:12: load.requests[0].llm: llm sends a chat body: the method is POST, " \
           "not GET" in str(caught.value)
