"""Mechanisms inferred from client records joined with upstream attempts (issue 18 item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.verdict.stats import read_records
from chaos.witness.analysis import Findings, analyse, relabel
from tests.fixtures.witness_files import ONE_PHASE, T0, attempt, client, windows, write


def _run(tmp_path: Path, clients: list[dict[str, Any]], attempts: list[dict[str, Any]],
         idempotent: frozenset[str] = frozenset(), phases: Any = None) -> Findings:
    requests, upstream = write(tmp_path, clients, attempts)
    return analyse(requests, upstream, T0, phases or ONE_PHASE, idempotent)


def test_a_retried_success_is_ok_after_retry_without_any_header(tmp_path: Path) -> None:
    found = _run(tmp_path, [client("a", 1.0), client("b", 2.0)],
                 [attempt("a", 1.0, status=None, ended="upstream_reset"), attempt("a", 1.05),
                  attempt("b", 2.0)])
    m = found.mechanisms()["whole"]
    assert (m["requests"], m["attempts"], m["max_attempts"], m["retried"]) == (2, 3, 2, 1)
    assert m["ok_after_retry"] == 1 and m["attempts_per_request"] == 1.5
    records = list(relabel(read_records(tmp_path / "requests.ndjson", T0), found.index))
    assert [r.outcome for r in records] == ["ok_after_retry", "ok"]


def test_two_attempts_in_flight_at_once_are_a_hedge(tmp_path: Path) -> None:
    found = _run(tmp_path, [client("a", 1.0), client("b", 3.0)],
                 [attempt("a", 1.0, took=0.5), attempt("a", 1.2, took=0.1),
                  attempt("b", 3.0, status=None, ended="upstream_reset"), attempt("b", 3.02)])
    m = found.mechanisms()["whole"]
    assert m["hedged"] == 1 and m["retried"] == 2


def test_a_retried_post_is_flagged_unless_its_request_is_idempotent(tmp_path: Path) -> None:
    clients = [client("a", 1.0, method="POST", name="chat")]
    attempts = [attempt("a", 1.0, status=502, method="POST"), attempt("a", 1.1, method="POST")]
    flagged = _run(tmp_path, clients, attempts).mechanisms()["whole"]
    allowed = _run(tmp_path, clients, attempts, frozenset({"chat"})).mechanisms()["whole"]
    assert flagged["non_idempotent_retries"] == 1 and allowed["non_idempotent_retries"] == 0


def test_an_abandoned_attempt_gives_the_upstream_timeout(tmp_path: Path) -> None:
    found = _run(tmp_path, [client("a", 1.0, "graceful_error", status=504, latency_ms=2100),
                            client("b", 5.0, "graceful_error", status=504, latency_ms=1600)],
                 [attempt("a", 1.0, took=2.0, status=None, ended="gateway_rst"),
                  attempt("b", 5.0, took=1.5, status=None, ended="gateway_fin"),
                  attempt(None, 8.0, took=1.0, status=None, ended="gateway_closed")])
    m = found.mechanisms()["whole"]
    assert m["abandoned"] == 3 and m["upstream_timeout_s"] == 1.5
    assert m["upstream_timeout_max_s"] == 2.0


def _flow(start: float, stop: float, prefix: str, step: float = 0.05) -> tuple[list[Any], list[Any]]:
    """Healthy traffic: one client request and one successful attempt every `step`."""
    clients, attempts = [], []
    for i in range(int(round((stop - start) / step))):
        rid, t = f"{prefix}{i}", start + i * step
        clients.append(client(rid, t))
        attempts.append(attempt(rid, t))
    return clients, attempts


def test_a_breaker_span_with_a_failed_probe_then_a_closing_probe(tmp_path: Path) -> None:
    before_c, before_a = _flow(0.0, 1.0, "h")
    fast = [client(f"f{i}", 1.0 + i * 0.05, "graceful_error", status=503, latency_ms=1)
            for i in range(40)]  # 1.0 .. 2.95 s, no attempt each
    probes = [client("p1", 2.0, "graceful_error", status=502), client("p2", 3.0)]
    after_c, after_a = _flow(3.1, 4.0, "r")
    found = _run(tmp_path, before_c + fast + probes + after_c,
                 before_a + [attempt("p1", 2.0, status=None, ended="refused"),
                             attempt("p2", 3.0, took=0.02)] + after_a)
    [span] = found.breaker_inferred()
    assert span["start"] == 1.0 and span["end"] == 2.95 and span["phase"] == "fault"
    assert span["probes"] == [2.0, 3.0] and span["closed_at"] == 3.02
    assert found.mechanisms()["whole"]["shed"] == 0


def test_errors_without_attempts_while_the_upstream_is_healthy_are_shed(tmp_path: Path) -> None:
    healthy_c, healthy_a = _flow(0.0, 3.0, "h")
    shed = [client(f"s{i}", 0.025 + i * 0.1, "graceful_error", status=503, latency_ms=1)
            for i in range(30)]
    found = _run(tmp_path, healthy_c + shed, healthy_a)
    m = found.mechanisms()["whole"]
    assert found.breaker_inferred() == []
    assert m["shed"] == 30 and m["shed_share"] == round(30 / 90, 4)


def test_retry_after_honoured_and_violated(tmp_path: Path) -> None:
    found = _run(tmp_path, [client("a", 1.0), client("b", 4.0)],
                 [attempt("a", 1.0, status=429, retry_after="1"), attempt("a", 2.2),
                  attempt("b", 4.0, status=429, retry_after="2"), attempt("b", 4.5)])
    assert found.mechanisms()["whole"]["retry_after"] == {
        "after_429": 2, "honoured": 1, "violations": 1, "min_gap_s": 0.49}


def test_retry_after_as_an_http_date(tmp_path: Path) -> None:
    from email.utils import formatdate

    when = formatdate(T0 + 4.0, usegmt=True)  # 3 s after the 429 arrived at 1.0
    found = _run(tmp_path, [client("a", 1.0), client("b", 1.0)],
                 [attempt("a", 0.99, status=429, retry_after=when), attempt("a", 4.1),
                  attempt("b", 0.99, status=429, retry_after=when), attempt("b", 2.0)])
    ra = found.mechanisms()["whole"]["retry_after"]
    assert (ra["honoured"], ra["violations"]) == (1, 1)


def test_unmatched_and_unidentified_attempts_are_counted_by_their_time(tmp_path: Path) -> None:
    phases = windows(("baseline", 0.0, 5.0), ("fault", 5.0, 10.0))
    found = _run(tmp_path, [client("a", 1.0, phase="baseline"), client("b", 6.0)],
                 [attempt("a", 1.0), attempt("b", 6.0), attempt("zz", 2.0),
                  attempt(None, 7.0), attempt(None, 7.5)], phases=phases)
    assert found.index.counts() == {"matched": 2, "unmatched": 1, "no_id": 2}
    by_phase = found.mechanisms()["by_phase"]
    assert by_phase["baseline"]["attempts"] == 2 and by_phase["fault"]["attempts"] == 3
    # the ids joined: the two attempts without one are not client traffic
    assert found.mechanisms()["whole"]["amplification"] == 1.5


def test_without_any_id_joined_every_attempt_counts_for_amplification(tmp_path: Path) -> None:
    """A gateway that drops the request id: all its attempts are unidentified."""
    found = _run(tmp_path, [client("a", 1.0), client("b", 2.0)],
                 [attempt(None, 1.0), attempt(None, 1.1), attempt(None, 2.0)])
    assert found.index.counts() == {"matched": 0, "unmatched": 0, "no_id": 3}
    assert found.mechanisms()["whole"]["amplification"] == 1.5


def test_attempt_timeline_and_drilldown_failed_and_retried_first(tmp_path: Path) -> None:
    clients = [client(f"k{i}", 0.1 * i) for i in range(300)]
    clients += [client("x", 5.0, "graceful_error", status=502), client("y", 6.0)]
    attempts = [attempt(f"k{i}", 0.1 * i) for i in range(300)]
    attempts += [attempt("x", 5.0, status=502), attempt("x", 5.1, status=None,
                                                         ended="gateway_rst"),
                 attempt("y", 6.0, status=503), attempt("y", 6.1)]
    found = _run(tmp_path, clients, attempts, phases=windows(("fault", 0.0, 31.0)))
    rows = found.drilldown
    assert len(rows) == 200 and found.drilldown_omitted == 102
    assert [r["request"]["rid"] for r in rows[:2]] == ["x", "y"]
    assert rows[0]["request"]["t"] == 5.0 and rows[0]["attempts"][1]["ended"] == "gateway_rst"
    second5 = found.timeline[5]
    assert second5 == {"t": 5, "attempts": 12, "complete_2xx": 10, "error_status": 1,
                       "abandoned": 1, "failed": 0}
    assert len(found.timeline) == 31


def test_a_probe_the_gateway_retried_is_one_probe_not_traffic(tmp_path: Path) -> None:
    """The half-open trial fails and the gateway retries it (one rid, attempts 80 ms apart):
    the breaker stays open until traffic of other requests flows and succeeds."""
    before_c, before_a = _flow(0.0, 1.0, "h")
    fast = [client(f"f{i}", 1.0 + i * 0.05, "graceful_error", status=503, latency_ms=1)
            for i in range(80)]  # 1.0 .. 4.95 s
    trial = [attempt("t1", 2.0 + k * 0.08, status=None, ended="toxic") for k in range(3)]
    after_c, after_a = _flow(5.0, 6.0, "r")
    found = _run(tmp_path, before_c + fast + [client("t1", 2.0, "graceful_error", status=502)]
                 + after_c, before_a + trial + after_a)
    [span] = found.breaker_inferred()
    assert span["probes"] == [2.0, 5.0]  # the failed trial, then the one that closed it
    assert span["end"] == 4.95 and span["closed_at"] == 5.01


def test_retry_after_judged_by_the_next_attempt_upstream_when_not_retried(
        tmp_path: Path) -> None:
    """The gateway passed the 429 on without retrying: Retry-After is honoured when it
    sends that upstream nothing for R seconds (an attempt 5 ms later was already on its way)."""
    found = _run(tmp_path, [client(r, t) for r, t in
                            (("a", 1.0), ("race", 1.015), ("c", 2.05), ("d", 4.0), ("e", 4.3))],
                 [attempt("a", 1.0, status=429, retry_after="1"), attempt("race", 1.015),
                  attempt("c", 2.05), attempt("d", 4.0, status=429, retry_after="1"),
                  attempt("e", 4.3)])
    ra = found.mechanisms()["whole"]["retry_after"]
    assert ra == {"after_429": 2, "honoured": 1, "violations": 1, "min_gap_s": 0.29}


def test_a_full_pool_turning_requests_away_is_shedding_not_a_breaker(tmp_path: Path) -> None:
    """The upstream answers slowly (1.5 s); the gateway's pool of 4 is full, so it sends
    attempts in bursts as answers free slots and turns everyone else away at once."""
    clients, attempts = [], []
    for burst in range(4):
        t = burst * 1.5
        for k in range(4):
            rid = f"b{burst}-{k}"
            clients.append(client(rid, t, latency_ms=1500))
            attempts.append(attempt(rid, t + k * 0.01, took=1.5))
    clients += [client(f"s{i}", 0.1 + i * 0.05, "graceful_error", status=503, latency_ms=1)
                for i in range(100)]  # 0.1 .. 5.05 s, between the bursts
    found = _run(tmp_path, clients, attempts)
    assert found.breaker_inferred() == []
    m = found.mechanisms()["whole"]
    assert m["shed"] == 100 and m["shed_share"] == round(100 / 116, 4)


def test_quick_abandons_and_client_timeouts_are_not_the_gateways_timeout(tmp_path: Path) -> None:
    """Counted as abandoned, but the timeout is what the gateway's own clock decided: not a
    connection it dropped after 1 ms, not an attempt it let go because the client gave up."""
    found = _run(tmp_path, [client("a", 1.0, "graceful_error", status=502, latency_ms=2),
                            client("b", 2.0, "read_timeout", status=0, latency_ms=5000),
                            client("c", 9.0, "graceful_error", status=504, latency_ms=2000)],
                 [attempt("a", 1.0, took=0.001, status=None, ended="gateway_fin"),
                  attempt("b", 2.0, took=5.0, status=None, ended="gateway_fin"),
                  attempt("c", 9.0, took=1.99, status=None, ended="gateway_rst")])
    m = found.mechanisms()["whole"]
    assert m["abandoned"] == 3
    assert m["upstream_timeout_s"] == m["upstream_timeout_max_s"] == 1.99


def test_the_join_keeps_nothing_per_client_record(tmp_path: Path) -> None:
    """Client records stream past: ids no attempt carried are not kept (a long run writes
    millions of records; memory follows what the upstream saw)."""
    from chaos.witness.join import client_requests, index_attempts, join
    from chaos.witness.records import read_attempts

    requests, upstream = write(tmp_path, [client(f"c{i}", i * 0.001) for i in range(5000)],
                               [attempt("c7", 0.007)])
    index = index_attempts(read_attempts(upstream))
    joined = sum(len(a) for _, a in join(client_requests(requests), index))
    assert joined == 1 and index.seen == {"c7"}


def test_stragglers_admitted_before_the_breaker_opened_do_not_end_it(tmp_path: Path) -> None:
    """Requests sent before the breaker opened whose dial to the killed container hangs:
    the tap records each refused attempt from the accept (t) to the dial giving up (end),
    so they start before the interval and are not traffic let in."""
    before_c, before_a = _flow(0.0, 1.0, "h")
    stragglers = [client(f"s{k}", 0.95, "graceful_error", status=502, latency_ms=1400)
                  for k in range(3)]
    late = [attempt(f"s{k}", 0.951, took=1.35 + k * 0.01, status=None, ended="refused")
            for k in range(3)]
    fast = [client(f"f{i}", 1.0 + i * 0.05, "graceful_error", status=503, latency_ms=1)
            for i in range(60)]  # 1.0 .. 3.95 s
    after_c, after_a = _flow(4.0, 5.0, "r")
    found = _run(tmp_path, before_c + stragglers + fast + after_c,
                 before_a + late + after_a)
    [span] = found.breaker_inferred()
    assert span["start"] == 1.0 and span["end"] == 3.95 and span["probes"] == [4.0]
