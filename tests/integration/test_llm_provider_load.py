"""The real locustfile against the real LLM provider (docker/llm-provider, in-process on
127.0.0.1): each of the provider's stream behaviours, chosen per request by a header rule,
lands in its outcome class with the token figures the record carries, and the provider's
journal agrees with the client on tokens and finish_reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaos.outcomes import (
    GRACEFUL,
    INBAND_ERROR,
    OK,
    OTHER,
    RESET,
    STREAM_STALLED,
    TRUNCATED_SUCCESS,
)
from chaos.scenario.model import Load
from tests.fixtures.llm_provider import ProviderThread
from tests.fixtures.locust_runs import records_of, run_once

TOKENS = 6
CASES: dict[str, dict[str, Any]] = {  # X-Case -> the provider's `do`
    "no-done": {"no_done": True},
    "stall": {"stall_after": 2},
    "error": {"error_after": 2},
    "rst": {"cut_after": 2, "cut_with": "rst"},
    "malformed": {"malformed_after": 2},
    "limited": {"status": 429, "retry_after": "2s"},
}
SCRIPT = {"name": "provider-a", "tokens": TOKENS, "first_token_delay": "30ms",
          "token_delay": "10ms",
          "rules": [{"when": {"header": {"X-Case": case}}, "do": do} for case, do in CASES.items()]}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with ProviderThread(SCRIPT) as provider:
        chat = {"path": "/v1/chat/completions", "method": "POST",
                "llm": {"prompt_tokens": [20, 200], "max_tokens": 64, "stream": True}}
        items = [{"name": "complete", **chat}, {"name": "json", **chat,
                                                 "llm": {"max_tokens": 4, "stream": False}},
                 {"name": "anthropic", "path": "/v1/messages", "method": "POST",
                  "llm": {"api": "anthropic", "model": "claude-3-5-haiku", "max_tokens": 64}}]
        items += [{"name": case, "headers": {"X-Case": case}, **chat} for case in CASES]
        load = Load(target="gateway", users=6, spawn_rate=50, timeout="500ms",
                    connect_timeout="300ms", wait="20ms", requests=items,
                    request_id={"body_field": "user"})
        run = run_once(load, provider.url, tmp_path_factory.mktemp("provider-load"), 4.0, "llm")
        journal = requests.get(provider.url + "/journal?limit=100000", timeout=10).json()
    yield {**run, "journal": {a["rid"]: a for a in journal["attempts"]}}


def test_a_complete_stream_and_the_journal_agree(run: dict[str, Any]) -> None:
    for r in records_of(run, "complete"):
        assert (r["outcome"], r["tokens"], r["done"], r["finish_reason"]) == (
            OK, TOKENS, True, "stop"), r
        assert r["ttft_ms"] >= 25 and len(r["itl_ms"]) == TOKENS - 1
        attempt = run["journal"][r["rid"]]  # the id went through the body field too
        assert (attempt["tokens"], attempt["finish_reason"]) == (r["tokens"], r["finish_reason"])
        assert attempt["prompt_tokens"] == r["prompt_tokens"] and 20 <= r["prompt_tokens"] <= 200


def test_non_streaming_and_anthropic_answers(run: dict[str, Any]) -> None:
    assert {(r["outcome"], r["tokens"], r["finish_reason"]) for r in records_of(run, "json")} == {
        (OK, 4, "length")}
    assert {(r["outcome"], r["tokens"], r["done"]) for r in records_of(run, "anthropic")} == {
        (OK, TOKENS, True)}


@pytest.mark.parametrize(("case", "outcome", "tokens", "done"), [
    ("no-done", TRUNCATED_SUCCESS, TOKENS, False), ("stall", STREAM_STALLED, 2, False),
    ("error", INBAND_ERROR, 2, False), ("rst", RESET, 2, False),
    # the provider goes on after its chunk that is no JSON; a client SDK would have failed
    ("malformed", OTHER, TOKENS, True),
])
def test_each_stream_behaviour_has_its_class(run: dict[str, Any], case: str, outcome: str,
                                             tokens: int, done: bool) -> None:
    for r in records_of(run, case):
        assert (r["outcome"], r["tokens"], r["done"]) == (outcome, tokens, done), r
        assert r["ttft_ms"] is not None


def test_a_429_keeps_its_retry_after(run: dict[str, Any]) -> None:
    assert {(r["outcome"], r["status"], r["retry_after"]) for r in records_of(run, "limited")} == {
        (GRACEFUL, 429, "2")}
