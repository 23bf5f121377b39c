"""The LLM assertion keys judged on hand-written records and provider journals: each one
passes on evidence that meets it, fails (naming the evidence) on evidence that violates it,
and is inconclusive, saying why, when its evidence is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from chaos.llm.analysis import analyse_llm
from chaos.scenario.model import Assertion, Scenario
from chaos.verdict.evaluate import Evidence, evaluate
from chaos.verdict.result import AssertionResult
from chaos.verdict.stats import read_records
from tests.fixtures.llm_files import T0, WINDOWS, chat, plain, served, write

PROVIDERS = {"provider-a": {"build": "docker/llm-provider", "port": 8080},
             "provider-b": {"build": "docker/llm-provider", "port": 8080}}


def scenario(*assertions: dict[str, Any], providers: bool = True) -> Scenario:
    return Scenario.model_validate({
        "name": "llm",
        "services": {"gateway": {"build": "docker/gateway", "port": 8000},
                     **(PROVIDERS if providers else {})},
        "load": {"target": "gateway", "requests": [
            {"name": "chat", "method": "POST", "path": "/v1/chat/completions"}]},
        "phases": [{"name": w.name, "duration": w.end - w.start} for w in WINDOWS],
        "assertions": list(assertions)})


def judge(tmp_path: Path, clients: list[dict[str, Any]], attempts: list[dict[str, Any]] | None,
          *assertions: dict[str, Any], providers: bool = True) -> list[AssertionResult]:
    requests = write(tmp_path, clients, attempts)
    names = sorted(PROVIDERS) if providers else []
    llm = analyse_llm(tmp_path, requests, T0, WINDOWS, names)
    ev = Evidence(read_records(requests, T0), WINDOWS, [], llm=llm)
    return evaluate(scenario(*assertions, providers=providers), ev)


def one(results: list[AssertionResult], kind: str) -> AssertionResult:
    [found] = [r for r in results if r.kind == kind]
    return found


def streams(n: int, ttft_ms: float, gap_ms: float, start: float = 10.0) -> list[dict[str, Any]]:
    return [chat(f"r{i}", start + i * 0.1, ttft_ms=ttft_ms, itl_ms=[gap_ms] * 5)
            for i in range(n)]


# ttft and inter_token: the load's ttft_ms and itl_ms

def test_ttft_passes_and_fails_on_the_streamed_records(tmp_path: Path) -> None:
    fast = one(judge(tmp_path, streams(20, 300.0, 20.0), None,
                     {"phase": "fault", "ttft": {"p95": "< 2s"}}), "ttft.p95")
    assert fast.status == "pass" and fast.observed == "300.0ms"
    slow = one(judge(tmp_path, streams(20, 2500.0, 20.0), None,
                     {"phase": "fault", "ttft": {"p95": "< 2s"}}), "ttft.p95")
    assert slow.status == "fail"
    assert slow.message == ("time to first token p95 was 2500.0ms over 20 streamed requests "
                            "during fault (the load's ttft_ms), expected < 2s")


def test_inter_token_fails_on_a_stalled_gap(tmp_path: Path) -> None:
    records = streams(20, 100.0, 20.0)
    records[3]["itl_ms"] = [20.0] * 4 + [900.0] * 2
    results = judge(tmp_path, records, None,
                    {"phase": "fault", "inter_token": {"p99": "< 500ms", "p50": 50}})
    assert one(results, "inter_token.p50").status == "pass"
    p99 = one(results, "inter_token.p99")
    assert p99.status == "fail" and p99.observed == "900.0ms"
    assert "over 101 gaps of 20 streamed requests during fault" in p99.message


def test_token_latencies_without_a_streamed_request_are_inconclusive(tmp_path: Path) -> None:
    records = [plain(f"r{i}", 10.0 + i) for i in range(5)]
    results = judge(tmp_path, records, None,
                    {"phase": "fault", "ttft": {"max": "< 2s"}, "inter_token": {"p99": "1s"}})
    ttft = one(results, "ttft.max")
    assert ttft.status == "inconclusive"
    assert "no streamed request got a first token" in ttft.message
    assert one(results, "inter_token.p99").status == "inconclusive"


# served_by and fallback_used: the provider journals

def _fallbacks(n_fallback: int, n: int = 10) -> tuple[list[Any], list[Any]]:
    clients, attempts = [], []
    for i in range(n):
        rid, t = f"r{i}", 10.0 + i * 0.5
        clients.append(chat(rid, t))
        if i < n_fallback:
            attempts.append(served(rid, t, "provider-a", status=429, retry_after="1",
                                   took=0.01))
            attempts.append(served(rid, t + 0.05, "provider-b"))
        else:
            attempts.append(served(rid, t, "provider-a"))
    return clients, attempts


def test_fallback_used_and_served_by(tmp_path: Path) -> None:
    clients, attempts = _fallbacks(9)
    results = judge(tmp_path, clients, attempts,
                    {"phase": "fault", "fallback_used": "> 0",
                     "served_by": {"provider-b": ">= 0.9"}})
    assert one(results, "fallback_used").status == "pass"
    assert one(results, "served_by.provider-b").observed == "0.9000"
    assert one(results, "served_by.provider-b").status == "pass"


def test_fallback_used_fails_when_every_success_came_from_the_first_provider(
        tmp_path: Path) -> None:
    clients, attempts = _fallbacks(0)
    results = judge(tmp_path, clients, attempts,
                    {"phase": "fault", "fallback_used": "> 0",
                     "served_by": {"provider-b": ">= 0.9"}})
    fallback = one(results, "fallback_used")
    assert fallback.status == "fail"
    assert fallback.message == (
        "0 of 10 successful requests during fault were served by a provider other than the "
        "first one tried (0.0000; served by provider-a 10; the provider journals), "
        "expected > 0")
    share = one(results, "served_by.provider-b")
    assert share.status == "fail" and share.message.startswith(
        "provider-b served 0 of 10 successful requests during fault")


def test_journal_bounds_without_a_journal_are_inconclusive(tmp_path: Path) -> None:
    clients, _ = _fallbacks(0)
    bounds = {"phase": "fault", "fallback_used": "> 0", "served_by": {"provider-b": 0.9},
              "retry_after_honoured": True, "no_retry_on": [400]}
    results = judge(tmp_path, clients, None, bounds)
    assert {r.status for r in results} == {"inconclusive"}
    assert "no journal of provider-a, provider-b was read" in results[0].message
    bare = judge(tmp_path, clients, None, bounds, providers=False)
    assert "the scenario has no service with llm:" in one(bare, "fallback_used").message


def test_served_by_without_a_joined_request_id_is_inconclusive(tmp_path: Path) -> None:
    clients, attempts = _fallbacks(3)
    for a in attempts:
        a["rid"] = None  # the gateway dropped the user field
    result = one(judge(tmp_path, clients, attempts,
                       {"phase": "fault", "served_by": {"provider-a": ">= 0.5"}}),
                 "served_by.provider-a")
    assert result.status == "inconclusive"
    assert "13 provider attempts journalled, 0 carried a client request id" in result.message


# retry_after_honoured and no_retry_on

def test_retry_after_honoured(tmp_path: Path) -> None:
    clients = [chat("r1", 10.0), chat("r2", 11.0)]
    waited = [served("r1", 10.0, status=429, retry_after="1", took=0.01),
              served("r1", 11.05, "provider-a"),
              served("r2", 11.0, status=503, retry_after="2", took=0.01),
              served("r2", 13.1, "provider-a")]
    ok = one(judge(tmp_path, clients, waited, {"phase": "fault", "retry_after_honoured": True}),
             "retry_after_honoured")
    assert ok.status == "pass" and ok.observed == "1.0000"
    hasty = [*waited[:3], served("r2", 11.3, "provider-a")]
    bad = one(judge(tmp_path, clients, hasty, {"phase": "fault", "retry_after_honoured": True}),
              "retry_after_honoured")
    assert bad.status == "fail" and bad.observed == "0.5000"
    assert bad.message == (
        "1 of 2 re-attempts after a 429/503 with Retry-After during fault came sooner than "
        "asked, on the same provider (provider-a: 1 of 2 re-attempts too soon, one 0.29s "
        "after asking 2s; the provider journals)")


def test_retry_after_honoured_with_no_such_retry_passes_saying_so(tmp_path: Path) -> None:
    clients, attempts = _fallbacks(5)  # fell back to provider-b: provider-a never retried
    result = one(judge(tmp_path, clients, attempts,
                       {"phase": "fault", "retry_after_honoured": True}), "retry_after_honoured")
    assert result.status == "pass"
    assert result.message == "no retry after a Retry-After during fault (the provider journals)"


def test_no_retry_on_400(tmp_path: Path) -> None:
    clients = [chat(f"r{i}", 10.0 + i * 0.5, "other", status=400) for i in range(40)]
    attempts = [served(f"r{i}", 10.0 + i * 0.5, "provider-a", status=400) for i in range(40)]
    clean = one(judge(tmp_path, clients, attempts, {"phase": "fault", "no_retry_on": [400]}),
                "no_retry_on.400")
    assert clean.status == "pass"
    attempts += [served(f"r{i}", 10.3 + i * 0.5, "provider-b", status=400) for i in range(3)]
    bad = one(judge(tmp_path, clients, attempts, {"phase": "fault", "no_retry_on": [400]}),
              "no_retry_on.400")
    assert bad.status == "fail"
    assert bad.message == ("3 of 40 requests during fault were re-attempted after a 400 from "
                           "provider-a (the provider journals)")


# status and retry_after_on_429: the client records

def test_status_counts_client_responses(tmp_path: Path) -> None:
    clients = [chat("r1", 10.0), chat("r2", 10.5, "graceful_error", status=429,
                                      retry_after="1")]
    results = judge(tmp_path, clients, None,
                    {"phase": "fault", "status": {"429": "> 0", "500": 0}})
    assert one(results, "status.429").status == "pass"
    assert one(results, "status.500").status == "pass"
    none = one(judge(tmp_path, [chat("r1", 10.0)], None,
                     {"phase": "fault", "status": {"429": "> 0"}}), "status.429")
    assert none.status == "fail"
    assert none.message == "0 of 1 client responses during fault had HTTP 429, expected > 0"


def test_retry_after_on_429(tmp_path: Path) -> None:
    told = [chat(f"r{i}", 10.0 + i, "graceful_error", status=429, retry_after="1")
            for i in range(4)]
    assert one(judge(tmp_path, told, None, {"phase": "fault", "retry_after_on_429": ">= 1"}),
               "retry_after_on_429").status == "pass"
    told[0]["retry_after"] = None
    bad = one(judge(tmp_path, told, None, {"phase": "fault", "retry_after_on_429": ">= 1"}),
              "retry_after_on_429")
    assert bad.status == "fail"
    assert bad.message == ("3 of 4 429 answers to clients during fault carried Retry-After "
                           "(0.7500), expected >= 1")
    quiet = one(judge(tmp_path, [chat("r1", 10.0)], None,
                      {"phase": "fault", "retry_after_on_429": ">= 1"}), "retry_after_on_429")
    assert quiet.status == "inconclusive" and "answered no client request with 429" in \
        quiet.message


def test_reclassified_ok_counts_as_truncated_success(tmp_path: Path) -> None:
    clients = [chat("r1", 10.0), chat("r2", 10.5)]
    attempts = [served("r1", 10.0), served("r2", 10.5, ended="cut", finish_reason=None)]
    results = judge(tmp_path, clients, attempts,
                    {"phase": "fault", "truncated_success": 0})
    result = one(results, "truncated_success")
    assert result.status == "fail" and result.observed == "1"


# the models

@pytest.mark.parametrize("bad", [{"ttft": {}}, {"ttft": {"p96": "1s"}},
                                 {"served_by": {"provider-b": "1.5"}},
                                 {"status": {"42": "> 0"}}, {"no_retry_on": [200]},
                                 {"fallback_used": "2"}])
def test_bad_llm_bounds_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Assertion.model_validate(bad)


def test_llm_bounds_cannot_be_scoped_to_one_request(tmp_path: Path) -> None:
    from chaos.errors import ScenarioError
    from chaos.scenario.loader import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: llm\nservices:\n  gateway: {build: docker/gateway, port: 8000}\n"
        "load:\n  target: gateway\n  requests:\n    - {name: chat, path: /}\n"
        "phases:\n  - {name: fault, duration: 1s}\n"
        "assertions:\n  - {phase: fault, request: chat, ttft: {p95: 1s}}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "ttft cannot be bounded for one request" in str(err.value)
    assert ":11" in str(err.value)


LOADED = """\
name: llm
services:
  gateway: {build: docker/gateway, port: 8000}
  provider-a: {build: docker/llm-provider, port: 8080, llm: {name: primary}}
load:
  target: gateway
  requests:
    - {name: chat, path: /}
phases:
  - {name: fault, duration: 1s}
assertions:
  - {phase: fault, served_by: {primary: ">= 0.5"}}
"""


def _load(tmp_path: Path, text: str) -> Scenario:
    from chaos.scenario.loader import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


def test_served_by_names_the_providers_of_the_scenario(tmp_path: Path) -> None:
    from chaos.errors import ScenarioError

    assert _load(tmp_path, LOADED).assertions[0].served_by is not None  # llm.name counts
    with pytest.raises(ScenarioError) as err:
        _load(tmp_path, LOADED.replace("{primary:", "{provider-a:"))
    assert "unknown provider 'provider-a' (known: primary)" in str(err.value)
    assert err.value.line == 12 and err.value.exit_code == 2
    with pytest.raises(ScenarioError) as none:
        _load(tmp_path, LOADED.replace("  provider-a: {build: docker/llm-provider, port: 8080, "
                                       "llm: {name: primary}}\n", "")
              .replace("served_by: {primary: \">= 0.5\"}", "no_retry_on: [400]"))
    assert "no_retry_on is read from the LLM providers' journals, and no service has llm:" \
        in str(none.value)
