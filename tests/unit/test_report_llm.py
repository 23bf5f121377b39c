"""The report's LLM charts (chaos.report.llm_chart): tokens/s and the token latencies are
drawn beside the outcome timeline for a run with LLM records, and for no other run."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.llm.analysis import analyse_llm, store_llm
from chaos.report.html import render_html
from chaos.report.schema import result_schema
from chaos.verdict.result import Result
from tests.fixtures.llm_files import T0, chat, served, write
from tests.fixtures.report_cases import hand_built

CHARTS = ('id="timeline-tokens"', 'id="timeline-token-latency"', 'id="llm-legend"')


def llm_result(tmp_path: Path) -> Result:
    result = hand_built()  # 30 s, phases baseline/fault/recovery
    clients = [chat(f"r{i}", 10.0 + i * 0.5, ttft_ms=80.0 + i, tokens=12, latency_ms=900.0,
                    itl_ms=[30.0] * 11) for i in range(20)]
    attempts = [served(f"r{i}", 10.0 + i * 0.5, "provider-a", tokens=12) for i in range(20)]
    requests = write(tmp_path, clients, attempts)
    store_llm(result, analyse_llm(tmp_path, requests, T0, result.phases, ["provider-a"]))
    return result


def test_llm_run_shows_tokens_and_token_latency_beside_the_timeline(tmp_path: Path) -> None:
    result = llm_result(tmp_path)
    assert result.llm_timeline and result.llm["whole"]["served_by"] == {"provider-a": 20}
    html = render_html(result)
    for mark in CHARTS:
        assert mark in html
    # under the outcome timeline, on the same page section
    timeline = html.split('id="timeline"')[1].split('id="assertions-heading"')[0]
    assert timeline.index('id="timeline-rps"') < timeline.index('id="timeline-tokens"')
    tokens = html.split('id="timeline-tokens"')[1].split("</svg>")[0]
    assert tokens.count('class="tokens"') >= 10  # a bar per second of streaming
    assert "tokens/s" in tokens
    lines = html.split('id="timeline-token-latency"')[1].split("</svg>")[0]
    for key in ("ttft_p50_ms", "ttft_p95_ms", "itl_p99_ms"):
        assert f'class="{key}"' in lines


def test_other_runs_have_no_llm_chart() -> None:
    html = render_html(hand_built())
    for mark in CHARTS:
        assert mark not in html


def test_an_old_result_json_without_llm_fields_renders(tmp_path: Path) -> None:
    data = hand_built().to_dict()
    data.pop("llm"), data.pop("llm_timeline")
    html = render_html(Result.from_dict(json.loads(json.dumps(data))))
    assert 'id="timeline-tokens"' not in html


def test_the_result_schema_takes_the_llm_fields(tmp_path: Path) -> None:
    import jsonschema

    result = llm_result(tmp_path)
    jsonschema.validate(json.loads(json.dumps(result.to_dict())), result_schema())


def test_llm_section_names_providers_fallbacks_and_truncations(tmp_path: Path) -> None:
    result = hand_built()
    clients = [chat("r1", 11.0), chat("r2", 12.0), chat("r3", 13.0)]
    attempts = [served("r1", 11.0, "provider-a", status=429, retry_after="1", took=0.01),
                served("r1", 11.05, "provider-b"),
                served("r2", 12.0, "provider-a", ended="cut", finish_reason=None),
                served("r3", 13.0, "provider-a")]
    requests = write(tmp_path, clients, attempts)
    store_llm(result, analyse_llm(tmp_path, requests, T0, result.phases,
                                  ["provider-a", "provider-b"]))
    html = render_html(result)
    table = html.split('id="llm-phases"')[1].split("</table>")[0]
    assert "provider-a 1, provider-b 1" in table  # served the successes r3 and r1
    assert "after 429: 1" in table
    drill = html.split('id="llm-drilldown"')[1].split("</table>")[0]
    assert "provider-a 429 → provider-b 200 stop" in drill
    assert "truncated_success (client saw ok)" in drill
    assert "provider-a 200 (cut)" in drill
    assert 'id="llm-providers"' not in render_html(hand_built())
