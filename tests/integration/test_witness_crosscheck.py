"""The witness's inferences against the reference gateway's own telemetry on one run
(loopback stack, no Docker; issue 18 item 4): every upstream connection is reset for 5 s,
so the gateway retries, its breaker opens, half-opens on its 2 s timer and closes once the
fault is gone. Retries per request (attempts - 1) agree with its X-Gateway-Retries header
on at least 99% of requests; the inferred open and close agree with its
gateway_breaker_state metric within 0.5 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.engine import run_scenario
from chaos.scenario.loader import load_scenario
from chaos.stack.loopback import LoopbackStack
from chaos.verdict.derived import breaker_transitions
from chaos.witness.join import client_requests, index_attempts, join
from chaos.witness.records import read_attempts

SCENARIO = """\
name: witness-crosscheck
description: Upstream connections reset for 5 s; the breaker opens and closes.
services:
  backend: {build: docker/backend, port: 8080}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 10
  spawn_rate: 10
  timeout: 5s
  requests:
    - {name: get-item, path: "/api/items/42?delay_ms=40"}
probes:
  breaker: {service: gateway, path: /metrics, metric: gateway_breaker_state, open_value: 1}
phases:
  - {name: baseline, duration: 2s}
  - name: fault
    duration: 5s
    faults:
      - proxy: backend
        toxic: {type: reset_peer, stream: downstream, attributes: {timeout: 0}}
  - {name: recovery, duration: 3s}
assertions:
  - {phase: fault, breaker: {opens_within: 3s}}
"""


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.delenv("CHAOS_PROXY_TAP", raising=False)


def test_witness_agrees_with_the_gateways_header_and_metric(tmp_path: Path) -> None:
    path = tmp_path / "crosscheck.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    result = run_scenario(load_scenario(path), file=str(path), report_root=tmp_path / "reports",
                          quiet=True, stack_factory=LoopbackStack)
    run_dir = Path(result.report_dir)
    assert result.witness["kind"] == "tap", result.witness
    index = index_attempts(read_attempts(run_dir / "upstream.ndjson"))
    pairs = [(len(attempts), request.hdr_retries or 0) for request, attempts in
             join(client_requests(run_dir / "requests.ndjson"), index) if request.rid]
    agree = sum(1 for n, header in pairs if max(n - 1, 0) == header)
    assert pairs and agree >= 0.99 * len(pairs), f"retries agree on {agree} of {len(pairs)}"
    assert any(header for _, header in pairs), "the gateway never retried: no cross-check"

    seen = breaker_transitions(result)
    opened = next(t.t for t in seen if t.to_state == "open")
    closed = next(t.t for t in seen if t.to_state == "closed")
    spans = result.breaker_inferred
    assert spans, f"no breaker inferred; the metric read {[(t.t, t.to_state) for t in seen]}"
    # the metric is sampled every 250 ms: it reads a change up to one interval late
    assert abs(spans[0]["start"] - opened) <= 0.5, (spans, opened)
    assert spans[-1]["closed_at"] is not None and abs(spans[-1]["closed_at"] - closed) <= 0.5
