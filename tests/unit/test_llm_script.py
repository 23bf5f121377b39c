"""The LLM provider's rule engine (docker/llm-provider/script.py), without a server: which
rule answers which request (model glob, api, stream, header, requests counters, window,
share), installed rule sets before the script, and the keys it refuses."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chaos.scenario import llm_provider as H
from tests.fixtures.llm_provider import provider_modules

S = provider_modules().script


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _facts(model: str = "gpt-4o-mini", api: str = "openai", stream: bool = False,
           **headers: str) -> Any:
    return S.Facts(api, model, stream, {k.lower().replace("_", "-"): v for k, v in headers.items()})


def _answers(script: Any, count: int, **facts: Any) -> list[str | None]:
    found = []
    for _ in range(count):
        rule = script.decide(_facts(**facts))
        found.append(rule.ref if rule is not None else None)
    return found


def test_no_rule_is_a_normal_answer() -> None:
    assert S.Script([]).decide(_facts()) is None


def test_model_is_a_glob_and_api_and_stream_must_match() -> None:
    script = S.Script([{"when": {"model": "gpt-4o*", "api": "openai", "stream": True},
                        "do": {"status": 500}}])
    assert _answers(script, 1, model="gpt-4o-mini", stream=True) == ["script#0"]
    assert _answers(script, 1, model="gpt-4o", stream=True) == ["script#0"]
    assert _answers(script, 1, model="gpt-3.5-turbo", stream=True) == [None]
    assert _answers(script, 1, model="gpt-4o-mini", stream=False) == [None]
    assert _answers(script, 1, model="gpt-4o-mini", api="anthropic", stream=True) == [None]


def test_header_names_are_case_insensitive_values_exact() -> None:
    script = S.Script([{"when": {"header": {"X-Tenant": "a"}}, "do": {"status": 429}}])
    assert _answers(script, 1, X_Tenant="a") == ["script#0"]
    assert _answers(script, 1, X_Tenant="b") == [None]
    assert _answers(script, 1) == [None]


def test_min_prompt_tokens_matches_long_prompts_only() -> None:
    """Context-length faults key on the prompt's size, which survives a gateway that
    rebuilds the request (a client header does not)."""
    script = S.Script([{"when": {"min_prompt_tokens": 2500},
                        "do": {"status": 400, "error": "context_length_exceeded"}}])
    long, short = S.Facts("openai", "gpt-4o-mini", False, {}, 3000), _facts()
    assert script.decide(long) is not None and script.decide(short) is None
    with pytest.raises(S.ScriptError, match="min_prompt_tokens"):
        S.Script([{"when": {"min_prompt_tokens": -1}, "do": {"status": 400}}])


def test_requests_first_n() -> None:
    script = S.Script([{"when": {"requests": "2"}, "do": {"status": 429}}])
    assert _answers(script, 4) == ["script#0", "script#0", None, None]


def test_requests_a_to_b() -> None:
    script = S.Script([{"when": {"requests": "2-3"}, "do": {"status": 503}}])
    assert _answers(script, 5) == [None, "script#0", "script#0", None, None]


def test_requests_every_k() -> None:
    script = S.Script([{"when": {"requests": "every 3"}, "do": {"status": 500}}])
    assert _answers(script, 7) == [None, None, "script#0", None, None, "script#0", None]


def test_counters_count_only_requests_matching_the_rest_of_when() -> None:
    """The first 2 streaming requests: non-streaming ones in between are not counted."""
    script = S.Script([{"when": {"stream": True, "requests": "2"}, "do": {"cut_after": 1}}])
    assert _answers(script, 1, stream=False) == [None]
    assert _answers(script, 1, stream=True) == ["script#0"]
    assert _answers(script, 1, stream=False) == [None]
    assert _answers(script, 2, stream=True) == ["script#0", None]


def test_every_rule_counts_even_when_an_earlier_rule_answered() -> None:
    """429 for the first 2, then a cut for the 3rd: requests are the provider's own."""
    script = S.Script([{"when": {"requests": "2"}, "do": {"status": 429}},
                       {"when": {"requests": "3"}, "do": {"cut_after": 3}}])
    assert _answers(script, 4) == ["script#0", "script#0", "script#1", None]


def test_window_is_measured_from_installation() -> None:
    clock = Clock()
    script = S.Script([{"when": {"window": ["1s", "2s"]}, "do": {"status": 500}}], clock=clock)
    assert _answers(script, 1) == [None]
    clock.now += 1.5
    assert _answers(script, 1) == ["script#0"]
    clock.now += 1.0
    assert _answers(script, 1) == [None]
    clock.now += 10
    set_id = script.install([{"when": {"window": [0, "500ms"]}, "do": {"status": 502}}])
    assert _answers(script, 1) == [f"{set_id}#0"]
    clock.now += 0.6
    assert _answers(script, 1) == [None]


def test_share_draws_a_random_share() -> None:
    script = S.Script([{"when": {"share": 0.3}, "do": {"status": 500}}], rng=random.Random(7))
    hits = sum(ref is not None for ref in _answers(script, 2000))
    assert 500 <= hits <= 700
    never = S.Script([{"when": {"share": 0}, "do": {"status": 500}}])
    assert _answers(never, 50) == [None] * 50


def test_installed_sets_go_before_the_script_newest_first_and_counters_start_at_install() -> None:
    script = S.Script([{"do": {"status": 500}}])
    _answers(script, 3)
    first = script.install([{"when": {"requests": "1"}, "do": {"status": 429}}])
    assert _answers(script, 2) == [f"{first}#0", "script#0"]
    second = script.install([{"when": {"requests": "1"}, "do": {"status": 503}}])
    assert _answers(script, 1) == [f"{second}#0"]
    assert script.remove(second) and not script.remove(second)
    assert _answers(script, 1) == ["script#0"]
    assert [s["id"] for s in script.shown()] == [first, "script"]


def test_first_match_wins() -> None:
    script = S.Script([{"when": {"model": "gpt-*"}, "do": {"status": 429}},
                       {"do": {"status": 500}}])
    assert _answers(script, 1) == ["script#0"]
    assert _answers(script, 1, model="claude-3-5-haiku") == ["script#1"]


@pytest.mark.parametrize(("rule", "named"), [
    ({"when": {"modle": "x"}}, "rules[0].when.modle"),
    ({"do": {"stauts": 500}}, "rules[0].do.stauts"),
    ({"do": {"status": 700}}, "rules[0].do.status"),
    ({"do": {"error": "teapot"}}, "rules[0].do.error"),
    ({"do": {"retry_after": "soon"}}, "rules[0].do.retry_after"),
    ({"when": {"requests": "first 3"}}, "rules[0].when.requests"),
    ({"when": {"requests": "5-2"}}, "rules[0].when.requests"),
    ({"when": {"share": 1.5}}, "rules[0].when.share"),
    ({"when": {"api": "cohere"}}, "rules[0].when.api"),
    ({"do": {"cut_after": 2, "stall_after": 1}}, "rules[0].do"),
    ({"do": {"status": 429, "cut_after": 2}}, "rules[0].do"),
    ({"do": {"cut_with": "rst"}}, "rules[0].do.cut_with"),
    ({"wen": {}}, "rules[0].wen"),
])
def test_a_bad_key_or_value_names_it(rule: dict[str, Any], named: str) -> None:
    with pytest.raises(S.ScriptError, match=rf"^{named.replace('[', '.').replace(']', '.')}"):
        S.Script().install([rule])


def test_behaviour_texts_are_short() -> None:
    assert S.Do.parse({"status": 429, "retry_after": "2s"}, "do").text() == "429 retry_after=2s"
    assert S.Do.parse({"stall_after": 3}, "do").text() == "stall_after=3"
    assert S.Do.parse({}, "do").text() == "normal"
    assert S.Do.parse({"retry_after": 1}, "do").answer_status == 429
    assert S.Do.parse({"error": "overloaded"}, "do").answer_status == 529


def test_the_config_refuses_an_unknown_top_level_key() -> None:
    with pytest.raises(S.ScriptError, match="script.tokenz"):
        S.Config.parse({"tokenz": 3})


def test_the_provider_checks_the_language_the_scenario_loader_checks() -> None:
    """Two checkers of one language (the provider's image cannot import chaos/): the keys,
    error classes and stream faults must stay the same, and a block using every key, as
    the harness hands it to the provider (script_env), must parse there."""
    assert set(S.WHEN_KEYS) == set(H.When.model_fields)
    assert set(S.DO_KEYS) == set(H.Do.model_fields)
    assert set(S.SPEC_KEYS) == {*H.ProviderSpec.model_fields, "request_id"}  # script_env adds it
    assert S.ERRORS == H.ERROR_CLASSES and S.STREAM_FAULTS == H.STREAM_FAULTS
    assert S.MAX_STALL_S == H.MAX_STALL_S and S.MAX_TOKENS == H.MAX_TOKENS
    rules: list[dict[str, Any]] = [
        {"when": {"model": "gpt-*", "api": "openai", "stream": True, "header": {"X-A": "b"},
                  "min_prompt_tokens": 10, "requests": "every 2", "window": ["1s", "2m"],
                  "share": 0.5},
         "do": {"stall_after": 2, "stall_for": "1500ms", "first_token_delay": "1s",
                "token_delay": "10ms", "tokens": 4}},
        {"do": {"status": 429, "error": "rate_limit_exceeded", "retry_after": "2s",
                "retry_after_format": "http-date", "ratelimit_headers": True}},
        {"do": {"cut_after": 3, "cut_with": "rst"}},
        {"do": {"error_after": 1, "error": "overloaded"}},
        {"do": {"malformed_after": 2, "no_done": True, "finish_reason": "length"}}]
    assert {k for r in rules for k in r.get("when", {})} == set(S.WHEN_KEYS)
    assert {k for r in rules for k in r["do"]} == set(S.DO_KEYS)
    spec = H.ProviderSpec.model_validate(
        {"models": ["gpt-4o-mini"], "tokens": 8, "first_token_delay": "20ms",
         "token_delay": "5ms", "tpm": 1000, "rules": rules}, strict=False)
    config = S.Config.parse(json.loads(H.script_env("llm", spec, "X-Chaos-Request-Id", None)))
    assert (config.name, config.models, config.tpm, config.request_id_field) == (
        "llm", ("gpt-4o-mini",), 1000, "user")
    assert [r.do.text() for r in S.Script(config.rules).base.rules] == [
        "first_token_delay=1s token_delay=10ms stall_for=1.5s stall_after=2 tokens=4",
        "429 rate_limit_exceeded retry_after=2s retry_after_format=http-date ratelimit_headers",
        "cut_after=3 cut_with=rst", "error_after=1",
        "finish_reason=length malformed_after=2 no_done"]
