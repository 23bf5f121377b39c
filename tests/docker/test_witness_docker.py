"""The upstream witness on real containers (issue 18 item 4): one scenario in which the
gateway retries resets and then meets a crashed backend.

Reference gateway: retries per request (attempts - 1) agree with its X-Gateway-Retries
header on at least 99% of requests; the inferred breaker opens and closes within 0.5 s of
its gateway_breaker_state metric. nginx (hardened profile, no header, no breaker metric):
ok_after_retry is counted from the attempts alone, and breaker.opens_within fails saying
there is no breaker, not "(no metric)". About 20 s per run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.verdict.derived import breaker_transitions
from chaos.verdict.result import Result
from chaos.witness.join import client_requests, index_attempts, join
from chaos.witness.records import read_attempts

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name: witness-docker
description: Resets the gateway retries, then a crash its breaker answers.
services:
  backend: {build: docker/backend, port: 8080, health: /healthz}
  gateway: {build: docker/gateway, port: 8000, health: /healthz,
            env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 10
  spawn_rate: 10
  timeout: 5s
  requests:
    - {name: get-item, path: "/api/items/42?delay_ms=20"}
probes:
  breaker: {service: gateway, path: /metrics, metric: gateway_breaker_state, open_value: 1}
phases:
  - {name: baseline, duration: 2s}
  - name: resets
    duration: 4s
    faults:
      - proxy: backend
        toxic: {type: reset_peer, stream: downstream, toxicity: 0.5, attributes: {timeout: 0}}
        redraw_every: 1s
  - name: crash
    duration: 5s
    faults: [{container: backend, action: kill}]
  - name: recovery
    duration: 5s
    faults: [{container: backend, action: start}]
assertions:
  - {phase: resets, ok_after_retry: "> 0"}
  - {phase: crash, breaker: {opens_within: 3s}}
"""


def run(tmp_path: Path, *sets: str, gateway: str | None = None
        ) -> tuple[int, dict[str, Any], Path]:
    path = tmp_path / "witness-docker.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    reports = tmp_path / "reports"
    args = [sys.executable, "-m", "chaos.cli", "run", str(path), "--report-dir", str(reports),
            "--quiet"]
    for item in sets:
        args += ["--set", item]
    if gateway:
        args += ["--gateway", gateway]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    run_dir = next(p for p in reports.iterdir() if p.is_dir() and not p.is_symlink())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["witness"]["kind"] == "tap", (proc.stderr[-2000:], result["witness"])
    return proc.returncode, result, run_dir


def one(result: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [a for a in result["assertions"] if a["kind"] == kind]
    return found


def test_the_witness_agrees_with_the_reference_gateways_header_and_metric(
        tmp_path: Path) -> None:
    code, result, run_dir = run(tmp_path)
    assert code == 0, [a["message"] for a in result["assertions"] if a["status"] != "pass"]
    index = index_attempts(read_attempts(run_dir / "upstream.ndjson"))
    pairs = [(len(attempts), request.hdr_retries or 0) for request, attempts in
             join(client_requests(run_dir / "requests.ndjson"), index) if request.rid]
    agree = sum(1 for n, header in pairs if max(n - 1, 0) == header)
    assert agree >= 0.99 * len(pairs), f"retries agree on {agree} of {len(pairs)} requests"
    assert sum(1 for _, header in pairs if header) >= 5, "too few retries to cross-check"
    seen = breaker_transitions(Result.from_dict(result))
    opened = next(t.t for t in seen if t.to_state == "open")
    closed = next(t.t for t in seen if t.to_state == "closed")
    [span] = [s for s in result["breaker_inferred"] if s["phase"] == "crash"]
    assert abs(span["start"] - opened) <= 0.5 and abs(span["closed_at"] - closed) <= 0.5, (
        span, [(t.t, t.to_state) for t in seen])
    assert span["probes"], "the half-open probes reached the upstream"


def test_nginx_retries_are_counted_and_its_missing_breaker_is_named(tmp_path: Path) -> None:
    code, result, _ = run(tmp_path, gateway="nginx:hardened")
    assert code == 1
    retried = one(result, "ok_after_retry")
    assert retried["status"] == "pass", retried  # from the attempts: nginx sends no header
    breaker = one(result, "breaker.opens_within")
    assert breaker["status"] == "fail"
    assert "the upstream saw attempts all through the fault: no breaker" in breaker["message"]
    assert "no metric" not in breaker["message"] and result["breaker_inferred"] == []
