"""The LLM provider served in-process on 127.0.0.1: each `do` behaviour as a client sees it,
the control API, and what the journal records."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fixtures.llm_provider import ProviderThread

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def _chat(stream: bool = False, rid: str = "r1", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 40}],
            "stream": stream, "user": rid, **extra}


def _events(response: requests.Response) -> list[str]:
    """The data: lines of an SSE stream, as text."""
    return [line[len("data: "):] for line in response.iter_lines(decode_unicode=True)
            if line and line.startswith("data: ")]


def _drain(provider: ProviderThread, events: list[str], **kwargs: Any) -> None:
    """Read a chat stream's data: lines into `events` (whatever the stream then raises)."""
    with _post(provider, _chat(True), stream=True, **kwargs) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(line[len("data: "):])


def _content(events: list[str]) -> str:
    text = ""
    for data in events:
        if data == "[DONE]":
            continue
        for choice in json.loads(data).get("choices", []):
            text += choice["delta"].get("content", "")
    return text


def script(rules: dict[str, Any]) -> pytest.MarkDecorator:
    """The provider's script for one test (on top of the fixture's)."""
    return pytest.mark.parametrize("provider", [rules], indirect=True, ids=["script"])


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> Iterator[ProviderThread]:
    script = getattr(request, "param", {})
    with ProviderThread({"name": "pa", "tokens": 5, "first_token_delay": 0,
                         "token_delay": "1ms", **script}) as server:
        yield server


def _post(provider: ProviderThread, body: dict[str, Any], path: str = CHAT,
          **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return requests.post(provider.url + path, json=body, **kwargs)


def test_a_normal_answer_and_stream(provider: ProviderThread) -> None:
    whole = _post(provider, _chat())
    body = whole.json()
    assert whole.status_code == 200 and whole.headers["X-Chaos-Provider"] == "pa"
    assert body["choices"][0]["message"]["content"] == "tok1 tok2 tok3 tok4 tok5"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    capped = _post(provider, _chat(max_tokens=2)).json()["choices"][0]
    assert capped["message"]["content"] == "tok1 tok2" and capped["finish_reason"] == "length"
    stream = _post(provider, _chat(True, stream_options={"include_usage": True}), stream=True)
    events = _events(stream)
    assert _content(events) == "tok1 tok2 tok3 tok4 tok5" and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    record = provider.journal()[-1]
    assert record["rid"] == "r1" and record["stream"] is True and record["tokens"] == 5
    assert record["ended"] == "complete" and record["finish_reason"] == "stop"
    assert record["events"] == 1 + 5 + 3 and record["rule"] is None
    assert record["behaviour"] == "normal" and record["prompt_tokens"] == 10
    models = requests.get(provider.url + "/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini", "claude-3-5-haiku"]


def test_anthropic_messages_whole_and_streamed(provider: ProviderThread) -> None:
    body = {"model": "claude-3-5-haiku", "max_tokens": 3, "system": "abcd",
            "messages": [{"role": "user", "content": "12345678"}]}
    whole = _post(provider, body, MESSAGES).json()
    assert whole["type"] == "message" and whole["content"][0]["text"] == "tok1 tok2 tok3"
    assert whole["stop_reason"] == "max_tokens" and whole["usage"]["input_tokens"] == 3
    stream = _post(provider, {**body, "stream": True}, MESSAGES, stream=True)
    types = [json.loads(e)["type"] for e in _events(stream)]
    assert types == ["message_start", "content_block_start", *["content_block_delta"] * 3,
                     "content_block_stop", "message_delta", "message_stop"]
    record = provider.journal()[-1]
    assert record["api"] == "anthropic" and record["model"] == "claude-3-5-haiku"


@script({"rules": [{"when": {"requests": "2"},
                                "do": {"status": 429, "retry_after": "2s",
                                       "ratelimit_headers": True}}]})
def test_status_with_retry_after_and_ratelimit_headers(provider: ProviderThread) -> None:
    first = _post(provider, _chat())
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-tokens"] == "2s"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    anthropic = _post(provider, {"model": "claude-3-5-haiku", "max_tokens": 4,
                                 "messages": [{"role": "user", "content": "hi"}]}, MESSAGES)
    assert anthropic.status_code == 429
    assert anthropic.json() == {"type": "error", "error": {
        "type": "rate_limit_error", "message": "Rate limit reached for requests"}}
    assert _post(provider, _chat()).status_code == 200
    records = provider.journal()
    assert [r["status"] for r in records] == [429, 429, 200]
    assert records[0]["rule"] == "script#0" and records[0]["retry_after"] == "2"
    assert records[0]["behaviour"] == "429 retry_after=2s ratelimit_headers"


@script({"rules": [
    {"when": {"header": {"X-Fmt": "ms"}}, "do": {"retry_after": "1500ms",
                                                  "retry_after_format": "ms"}},
    {"when": {"header": {"X-Fmt": "date"}}, "do": {"status": 503, "retry_after": "3s",
                                                    "retry_after_format": "http-date"}},
    {"when": {"header": {"X-Fmt": "529"}}, "do": {"error": "overloaded"}},
    {"when": {"header": {"X-Fmt": "400"}}, "do": {"status": 400,
                                                   "error": "context_length_exceeded"}}]})
def test_retry_after_formats_and_error_classes(provider: ProviderThread) -> None:
    ms = _post(provider, _chat(), headers={"X-Fmt": "ms"})
    assert ms.status_code == 429 and ms.headers["retry-after-ms"] == "1500"
    assert "Retry-After" not in ms.headers
    date = _post(provider, _chat(), headers={"X-Fmt": "date"})
    when = email.utils.parsedate_to_datetime(date.headers["Retry-After"]).timestamp()
    assert date.status_code == 503 and 1 <= when - time.time() <= 4.5
    assert date.json()["error"]["code"] == "overloaded"
    overloaded = _post(provider, _chat(), headers={"X-Fmt": "529"})
    assert overloaded.status_code == 529
    context = _post(provider, _chat(), headers={"X-Fmt": "400"})
    assert context.status_code == 400
    assert context.json()["error"]["code"] == "context_length_exceeded"
    assert provider.journal()[0]["retry_after"] == "1500ms"


@script({"rules": [{"do": {"finish_reason": "content_filter", "tokens": 2}}]})
def test_finish_reason_and_tokens(provider: ProviderThread) -> None:
    choice = _post(provider, _chat()).json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "tok1 tok2"
    events = _events(_post(provider, _chat(True), stream=True))
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "content_filter"
    assert provider.journal()[-1]["finish_reason"] == "content_filter"


@script({"rules": [{"do": {"first_token_delay": "300ms", "token_delay": "50ms"}}]})
def test_delays_pace_the_tokens(provider: ProviderThread) -> None:
    started = time.monotonic()
    stamps = []
    with _post(provider, _chat(True), stream=True) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and '"content":"tok' in line.replace(" ", ""):
                stamps.append(time.monotonic() - started)
    assert len(stamps) == 5 and stamps[0] >= 0.29
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 0.04


@script({"tokens": 8, "rules": [{"do": {"stall_after": 2}}]})
def test_stall_keeps_the_connection_open_until_the_peer_leaves(provider: ProviderThread) -> None:
    events: list[str] = []
    with pytest.raises(requests.exceptions.ConnectionError):  # read timeout mid-stream
        _drain(provider, events, timeout=(2, 0.5))
    assert _content(events) == "tok1 tok2"
    record = _journal_after(provider, 1)[-1]
    assert record["ended"] == "stalled" and record["tokens"] == 2
    assert record["behaviour"] == "stall_after=2" and record["finish_reason"] is None


@script({"rules": [{"do": {"stall_after": 1, "stall_for": "400ms"}}]})
def test_a_stall_for_a_while_then_goes_on(provider: ProviderThread) -> None:
    started = time.monotonic()
    events = _events(_post(provider, _chat(True), stream=True))
    assert time.monotonic() - started >= 0.39
    assert events[-1] == "[DONE]" and _content(events) == "tok1 tok2 tok3 tok4 tok5"
    assert provider.journal()[-1]["ended"] == "complete"


@script({"rules": [{"when": {"header": {"X-Cut": "fin"}}, "do": {"cut_after": 3}},
                               {"when": {"header": {"X-Cut": "rst"}},
                                "do": {"cut_after": 2, "cut_with": "rst"}}]})
def test_cut_after_closes_the_stream(provider: ProviderThread) -> None:
    events: list[str] = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # no terminating chunk
        _drain(provider, events, headers={"X-Cut": "fin"})
    assert _content(events) == "tok1 tok2 tok3"
    with pytest.raises(requests.exceptions.RequestException) as caught:
        _drain(provider, [], headers={"X-Cut": "rst"})
    assert "reset" in repr(caught.value).lower()
    fin, rst = provider.journal()
    assert (fin["ended"], fin["tokens"], fin["behaviour"]) == ("cut", 3, "cut_after=3")
    assert (rst["ended"], rst["tokens"]) == ("cut", 2)
    assert rst["behaviour"] == "cut_after=2 cut_with=rst"
    with pytest.raises(requests.exceptions.RequestException):  # a body shorter than promised
        _post(provider, _chat(), headers={"X-Cut": "fin"})


@script({"rules": [{"when": {"api": "openai"},
                                "do": {"error_after": 2, "error": "overloaded"}},
                               {"when": {"api": "anthropic"}, "do": {"error_after": 1}}]})
def test_error_after_sends_an_in_stream_error_event(provider: ProviderThread) -> None:
    events = _events(_post(provider, _chat(True), stream=True))
    assert _content(events[:-1]) == "tok1 tok2"
    assert json.loads(events[-1])["error"]["code"] == "overloaded"
    assert "[DONE]" not in events
    whole = _post(provider, _chat())
    assert whole.status_code == 200 and "error" in whole.json()
    anthropic = _post(provider, {"model": "claude-3-5-haiku", "max_tokens": 5, "stream": True,
                                 "messages": [{"role": "user", "content": "hi"}]}, MESSAGES,
                      stream=True)
    last = json.loads(_events(anthropic)[-1])
    assert last == {"type": "error", "error": {"type": "api_error", "message":
                                               "The server had an error while processing "
                                               "your request"}}
    assert provider.journal()[0]["ended"] == "complete"


@script({"rules": [{"when": {"header": {"X-K": "done"}}, "do": {"no_done": True}},
                               {"when": {"header": {"X-K": "bad"}},
                                "do": {"malformed_after": 2}}]})
def test_no_done_and_malformed(provider: ProviderThread) -> None:
    events = _events(_post(provider, _chat(True), stream=True, headers={"X-K": "done"}))
    assert "[DONE]" not in events and _content(events) == "tok1 tok2 tok3 tok4 tok5"
    events = _events(_post(provider, _chat(True), stream=True, headers={"X-K": "bad"}))
    bad = [e for e in events if e != "[DONE]" and not _is_json(e)]
    assert len(bad) == 1 and events.index(bad[0]) == 3  # role chunk, tok1, tok2, then it
    whole = _post(provider, _chat(), headers={"X-K": "bad"})
    assert whole.status_code == 200 and not _is_json(whole.text)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@script({"tpm": 40, "tokens": 10})
def test_tpm_limit_answers_429_with_retry_after(provider: ProviderThread) -> None:
    assert _post(provider, _chat()).status_code == 200  # 10 prompt + 10 completion
    assert _post(provider, _chat()).status_code == 200
    limited = _post(provider, _chat())
    assert limited.status_code == 429
    assert 55 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["x-ratelimit-limit-tokens"] == "40"
    assert provider.journal()[-1]["behaviour"] == "429 tpm=40"


@script({"models": ["gpt-4o-mini"]})
def test_an_unknown_model_is_404(provider: ProviderThread) -> None:
    missing = _post(provider, {**_chat(), "model": "gpt-5"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_control_api_installs_lists_and_removes_rule_sets(provider: ProviderThread) -> None:
    rules = provider.url + "/_chaos/rules"
    bad = requests.post(rules, json={"rules": [{"do": {"stauts": 500}}]}, timeout=5)
    assert bad.status_code == 400 and "rules[0].do.stauts" in bad.json()["error"]
    made = requests.post(rules, json={"rules": [{"when": {"requests": "1"},
                                                 "do": {"status": 502}}]}, timeout=5)
    set_id = made.json()["id"]
    assert [_post(provider, _chat()).status_code for _ in range(2)] == [502, 200]
    listed = requests.get(rules, timeout=5).json()["rule_sets"]
    assert [(s["id"], s["counts"]) for s in listed] == [(set_id, [2]), ("script", [])]
    assert requests.delete(f"{rules}/{set_id}", timeout=5).status_code == 200
    assert requests.delete(f"{rules}/{set_id}", timeout=5).status_code == 404
    assert provider.journal()[0]["rule"] == f"{set_id}#0"


def test_a_gateway_that_hangs_up_is_gateway_closed(provider: ProviderThread) -> None:
    requests.post(provider.url + "/_chaos/rules",
                  json={"rules": [{"do": {"first_token_delay": "2s"}}]}, timeout=5)
    with pytest.raises(requests.exceptions.RequestException):
        _post(provider, _chat(), timeout=(2, 0.3))
    record = _journal_after(provider, 1)[-1]
    assert record["ended"] == "gateway_closed" and record["end"] - record["t"] < 1.5


def _journal_after(provider: ProviderThread, count: int) -> list[dict[str, Any]]:
    """The journal once it holds `count` records (a handler ends a moment after its peer)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = provider.journal()
        if len(records) >= count:
            return records
        time.sleep(0.05)
    return provider.journal()
