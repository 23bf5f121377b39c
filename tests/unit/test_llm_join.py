"""The join of client records with the provider journals by request id (chaos.llm):
served_by, fallback, re-attempts after a 400, Retry-After waits per provider, ok ->
truncated_success, and the atomic rewrite of requests.ndjson."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from chaos.llm.analysis import analyse_llm
from chaos.llm.join import join_attempts, truncated
from chaos.llm.journal import provider_attempt, retry_after_seconds
from chaos.outcomes import OK, TRUNCATED_SUCCESS
from tests.fixtures.llm_files import T0, WINDOWS, chat, plain, read, served, write

PROVIDERS = ["provider-a", "provider-b"]


def _joined(*records: dict) -> object:
    return join_attempts(provider_attempt(r) for r in records)


def test_served_by_is_the_provider_whose_attempt_completed_with_a_2xx() -> None:
    joined = _joined(served("r1", 1.0, "provider-a", status=429, retry_after="1"),
                     served("r1", 1.3, "provider-b"))
    assert joined.served_by == "provider-b"
    assert joined.first == "provider-a"
    assert joined.fallback is True


def test_a_complete_2xx_is_preferred_to_a_stream_the_gateway_abandoned() -> None:
    joined = _joined(served("r1", 1.0, "provider-a", ended="gateway_closed"),
                     served("r1", 1.5, "provider-b"))
    assert joined.served_by == "provider-b"
    alone = _joined(served("r1", 1.0, "provider-a", ended="cut", finish_reason=None))
    assert alone.served_by == "provider-a"  # a cut stream still served what the client read


def test_no_2xx_means_no_provider_served_it() -> None:
    joined = _joined(served("r1", 1.0, status=500), served("r1", 1.3, status=500))
    assert joined.served_by is None and joined.fallback is False
    assert joined.reattempted_after == {500: "provider-a"}


def test_a_reattempt_after_a_400_names_the_provider_that_answered_it() -> None:
    joined = _joined(served("r1", 1.0, "provider-a", status=400),
                     served("r1", 1.3, "provider-b"))
    assert joined.reattempted_after == {400: "provider-a"}
    last = _joined(served("r1", 1.0, "provider-b"), served("r1", 1.3, "provider-a", status=400))
    assert last.reattempted_after == {}  # the 400 was the last attempt: nothing followed


def test_retry_after_waits_are_measured_on_the_same_provider_only() -> None:
    joined = _joined(served("r1", 1.0, "provider-a", status=429, retry_after="2", took=0.1),
                     served("r1", 1.2, "provider-b", status=503, retry_after="1", took=0.1),
                     served("r1", 3.2, "provider-a"))
    [wait] = joined.waits  # provider-b was never tried again: no wait to judge
    assert wait.provider == "provider-a" and wait.asked_s == 2.0
    assert abs(wait.waited_s - 2.1) < 1e-6 and wait.honoured
    early = _joined(served("r1", 1.0, status=429, retry_after="2", took=0.1),
                    served("r1", 1.6, "provider-a"))
    assert not early.waits[0].honoured


def test_retry_after_forms() -> None:
    assert retry_after_seconds("2", 0.0) == 2.0
    assert retry_after_seconds("1500ms", 0.0) == 1.5
    assert retry_after_seconds("0.5", 0.0) == 0.5
    now = dt.datetime(2026, 12, 2, 6, 0, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after_seconds("Wed, 02 Dec 2026 06:00:10 GMT", now) == 10.0
    assert retry_after_seconds("soon", 0.0) is None


def test_ok_is_truncated_when_the_finish_reason_differs_or_none_was_sent() -> None:
    joined = _joined(served("r1", 1.0, finish_reason="length"))
    assert truncated(chat("r1", 1.0, finish_reason="stop"), joined)
    assert not truncated(chat("r1", 1.0, finish_reason="length"), joined)
    cut = _joined(served("r1", 1.0, ended="cut", finish_reason=None))
    assert truncated(chat("r1", 1.0, finish_reason="stop"), cut)  # the gateway made one up
    assert not truncated(chat("r1", 1.0, "graceful_error", status=502), cut)
    assert not truncated(plain("r1", 1.0), cut)  # not an LLM record: nothing to compare


def test_requests_ndjson_gets_served_by_and_the_reclassified_outcome(tmp_path: Path) -> None:
    requests = write(tmp_path, [chat("r1", 11.0), chat("r2", 12.0), chat("r3", 13.0),
                                plain(None, 14.0)],
                     [served("r1", 11.0, "provider-a", status=429, retry_after="1"),
                      served("r1", 11.3, "provider-b"),
                      served("r2", 12.0, "provider-a", ended="cut", finish_reason=None)])
    before = requests.read_text().splitlines()
    findings = analyse_llm(tmp_path, requests, T0, WINDOWS, PROVIDERS)
    rows = read(requests)
    assert [r.get("served_by", "-") for r in rows] == ["provider-b", "provider-a", "-", "-"]
    assert rows[1]["outcome"] == TRUNCATED_SUCCESS and rows[1]["client_outcome"] == OK
    assert rows[0]["outcome"] == OK
    assert requests.read_text().splitlines()[2:] == before[2:]  # untouched lines kept as written
    assert not list(tmp_path.glob(".requests.ndjson.*"))  # no temporary file left behind
    assert findings is not None
    fault = findings.tallies["fault"]
    assert fault.served == {"provider-b": 1} and fault.fallback == 1
    assert fault.reclassified == 1 and fault.successes == 3  # r2 is truncated now
    assert fault.joined_successes == 1  # r3 and the plain one: no provider attempt
    assert findings.matched == 3 and findings.attempts == 3
    [row] = [d for d in findings.drilldown if d["request"]["rid"] == "r1"]
    assert [a["provider"] for a in row["provider_attempts"]] == ["provider-a", "provider-b"]


def test_a_torn_last_line_survives_the_rewrite(tmp_path: Path) -> None:
    requests = write(tmp_path, [chat("r1", 11.0)], [served("r1", 11.0)])
    with open(requests, "a", encoding="utf-8") as handle:
        handle.write('{"t": 1, "rid": "r9"')
    analyse_llm(tmp_path, requests, T0, WINDOWS, PROVIDERS)
    assert requests.read_text().endswith('{"t": 1, "rid": "r9"')
    assert '"served_by":"provider-a"' in requests.read_text().splitlines()[0]


def test_a_run_without_providers_or_llm_records_has_no_findings(tmp_path: Path) -> None:
    requests = write(tmp_path, [plain("r1", 11.0)], None)
    assert analyse_llm(tmp_path, requests, T0, WINDOWS, []) is None


def test_per_second_token_figures(tmp_path: Path) -> None:
    requests = write(tmp_path, [chat("r1", 11.0, ttft_ms=100.0, tokens=10, latency_ms=1100.0,
                                     itl_ms=[100.0] * 9),
                                chat("r2", 11.5, ttft_ms=300.0, tokens=0, itl_ms=[])], None)
    findings = analyse_llm(tmp_path, requests, T0, WINDOWS, [])
    assert findings is not None
    rows = {r["t"]: r for r in findings.tokens.timeline()}
    assert rows[11]["ttft_p50_ms"] == 100.0 and rows[11]["ttft_p95_ms"] == 300.0
    assert rows[11]["itl_p99_ms"] == 100.0
    assert abs(rows[11]["tokens_per_s"] + rows[12]["tokens_per_s"] - 10) < 0.2
    assert findings.tokens.phases["fault"].streamed == 2


def test_gaps_added_in_bulk_give_the_percentiles_of_adding_them_one_by_one() -> None:
    import random

    from chaos.verdict.histogram import EXACT_LIMIT, LatencyHistogram
    from chaos.verdict.llm_figures import gaps

    rng = random.Random(7)
    values = [round(rng.uniform(1, 900), 1) / 1000 for _ in range(EXACT_LIMIT + 500)]
    one, bulk = LatencyHistogram(), LatencyHistogram()
    for value in values:
        one.add(value)
    bulk.add_many(values[:5000])
    bulk.add_many(values[5000:])
    for q in (50, 95, 99, 100, 0):
        assert one.percentile(q) == bulk.percentile(q)
    assert bulk.count == len(values)
    assert gaps({"itl_ms": [10, 2.5, True, "x", float("nan"), -1, None]}) == [0.01, 0.0025]
