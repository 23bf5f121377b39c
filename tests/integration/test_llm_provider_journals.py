"""The provider journals end to end without Docker: two real LLM providers
(docker/llm-provider, in-process on 127.0.0.1), their /journal drained by the run's
provider poller into providers.ndjson, then joined with client records by request id.
A hand-driven "gateway" (this test) falls back from a 429 to provider-b, and passes off a
stream provider-a cut as a clean "stop": served_by, fallback and the reclassification as
truncated_success come out of the real journal records."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import requests

from chaos.llm.analysis import analyse_llm
from chaos.llm.providers import ProviderPoller
from chaos.outcomes import TRUNCATED_SUCCESS
from chaos.verdict.result import PhaseWindow
from chaos.witness.poll import Source
from tests.fixtures.llm_provider import ProviderThread

CHAT = "/v1/chat/completions"


def _ask(url: str, rid: str, stream: bool = False) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 6, "stream": stream, "user": rid}
    return requests.post(url + CHAT, json=body, headers={"X-Chaos-Request-Id": rid},
                         timeout=10, stream=stream)


def test_fallback_and_a_cut_stream_read_from_the_provider_journals(tmp_path: Path) -> None:
    script_a = {"name": "provider-a", "token_delay": "1ms", "first_token_delay": "1ms",
                "rules": [{"when": {"requests": "1"}, "do": {"status": 429, "retry_after": "1s"}},
                          {"when": {"stream": True}, "do": {"cut_after": 2}}]}
    script_b = {"name": "provider-b", "token_delay": "1ms", "first_token_delay": "1ms"}
    with ProviderThread(script_a) as a, ProviderThread(script_b) as b:
        sources = [Source("provider:provider-a", f"{a.url}/journal", service="provider-a"),
                   Source("provider:provider-b", f"{b.url}/journal", service="provider-b")]
        poller = ProviderPoller(sources, tmp_path / "providers.ndjson",
                                {s.name: s.name.partition(":")[2] for s in sources},
                                lambda service: False)
        poller.start()
        t0 = time.time()
        first = _ask(a.url, "r1")
        assert first.status_code == 429
        assert _ask(b.url, "r1").status_code == 200  # the fallback
        with _ask(a.url, "r2", stream=True) as cut, contextlib.suppress(requests.RequestException):
            cut.content  # noqa: B018 - read to the cut
        poller.stop()
    end = time.time() - t0 + 1
    clients = [
        {"t": t0 + 0.01, "phase": "fault", "name": "chat", "status": 200, "latency_ms": 50,
         "outcome": "ok", "rid": "r1", "tokens": 6, "finish_reason": "length"},
        {"t": t0 + 0.2, "phase": "fault", "name": "chat", "status": 200, "latency_ms": 50,
         "outcome": "ok", "rid": "r2", "ttft_ms": 5.0, "itl_ms": [1.0], "tokens": 2,
         "finish_reason": "stop", "done": True}]
    records = tmp_path / "requests.ndjson"
    records.write_text("".join(json.dumps(c) + "\n" for c in clients), encoding="utf-8")
    journal = [json.loads(line) for line in
               (tmp_path / "providers.ndjson").read_text().splitlines()]
    assert sorted((r["provider"], r["status"], r["source"]) for r in journal) == [
        ("provider-a", 200, "provider:provider-a"), ("provider-a", 429, "provider:provider-a"),
        ("provider-b", 200, "provider:provider-b")]
    findings = analyse_llm(tmp_path, records, t0, [PhaseWindow("fault", 0.0, end)],
                           ["provider-a", "provider-b"])
    assert findings is not None and findings.journal and findings.matched == 3
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert rows[0]["served_by"] == "provider-b" and rows[0]["outcome"] == "ok"
    assert rows[1]["served_by"] == "provider-a"
    assert rows[1]["outcome"] == TRUNCATED_SUCCESS  # provider-a cut it: it sent no finish
    fault = findings.tallies["fault"]
    assert fault.fallback == 1 and fault.served == {"provider-b": 1}
    assert fault.reattempted_after == {429: {"provider-a": 1}}
