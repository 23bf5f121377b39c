"""Evidence on real containers: backend-reset with --capture, against two gateways.

The reference gateway absorbs the proxy's resets (RSTs on gateway↔proxy, none on
client↔gateway); with error mapping off it passes them on (RSTs from the gateway to the
client), and each failed-request sample shows the packets of exactly its own connection,
down to the gateway's RST on that client port. The pcaps parse (our reader, and tcpdump -r
inside the capture image), the socket-state snapshots exist, and no container of the run
is left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from chaos.capture.pcap import read_packets
from chaos.runtime import labels as L

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CHAOS = [sys.executable, "-m", "chaos.cli"]
ASSERTION = "  - {phase: fault, rst_from: {gateway->client: 0}}\n"


def run_capture(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], Path]:
    """backend-reset plus an rst_from assertion, with --capture; (exit code, result, run dir)."""
    scenario = tmp_path / "backend-reset.yaml"
    scenario.write_text((ROOT / "scenarios" / "backend-reset.yaml").read_text() + ASSERTION)
    reports = tmp_path / "reports"
    proc = subprocess.run([*CHAOS, "run", str(scenario), "--capture", "-q", "--report-dir",
                           str(reports), *extra], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    runs = [p for p in reports.glob("backend-reset-*") if not p.is_symlink()]
    assert len(runs) == 1, proc.stdout + proc.stderr
    result = json.loads((runs[0] / "result.json").read_text())
    assert result["verdict"] in ("pass", "fail"), result.get("error")
    left = docker.from_env().containers.list(all=True, filters={"label": f"{L.RUN}={result['run_id']}"})
    assert not left, f"left running: {[c.name for c in left]}"
    return proc.returncode, result, runs[0]


def hops(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["hop"]: h for h in result["evidence"]["capture"]["hops"]}


def check_files(run_dir: Path, result: dict[str, Any]) -> None:
    pcaps = sorted((run_dir / "capture").glob("*/*.pcap*"))
    assert {p.parent.name for p in pcaps} == {"gateway", "backend"}
    assert all(sum(1 for _ in read_packets(p)) > 100 for p in pcaps)
    sockets = [json.loads(line) for line in (run_dir / "capture" / "sockets.ndjson").read_text().splitlines()]
    assert {r["service"] for r in sockets} == {"gateway", "backend"}
    assert any(r["states"].get("ESTAB") for r in sockets if r["service"] == "gateway")
    assert len(result["evidence"]["sockets"]) == len(sockets) >= 20
    image = next(tag for tag in (t for i in docker.from_env().images.list() for t in i.tags)
                 if tag.startswith("gateway-chaos/capture:"))
    gateway_pcap = next(p for p in pcaps if p.parent.name == "gateway")
    out = docker.from_env().containers.run(
        image, ["tcpdump", "-nr", f"/in/{gateway_pcap.name}", "-c", "5"], remove=True,
        network_mode="none", volumes={str(gateway_pcap.parent): {"bind": "/in", "mode": "ro"}},
        labels={L.RUN: result["run_id"]})
    assert out.decode().count("Flags [") == 5
    html = (run_dir / "report.html").read_text()
    for anchor in ('id="evidence-hops"', 'id="sockets-gateway"', 'id="evidence-timeline"'):
        assert anchor in html


def test_reference_gateway_absorbs_the_resets(tmp_path: Path) -> None:
    code, result, run_dir = run_capture(tmp_path)
    by_hop = hops(result)
    assert by_hop["gateway↔proxy"]["rst_by"].get("proxy", 0) > 0
    assert by_hop["client↔gateway"]["rst_by"].get("gateway", 0) == 0
    checks = {a["kind"]: a for a in result["assertions"]}
    assert checks["rst_from.gateway->client"]["status"] == "pass"
    assert code == 0, [a for a in result["assertions"] if a["status"] != "pass"]
    assert "No TCP RST reached a client." in result["evidence"]["capture"]["findings"]
    check_files(run_dir, result)


def test_gateway_without_error_mapping_passes_resets_to_the_client(tmp_path: Path) -> None:
    code, result, _ = run_capture(tmp_path, "--set", "services.gateway.env.GATEWAY_ERROR_MAPPING=off")
    by_hop = hops(result)
    assert by_hop["client↔gateway"]["rst_by"].get("gateway", 0) > 0
    assert by_hop["gateway↔proxy"]["rst_by"].get("proxy", 0) > 0
    checks = {a["kind"]: a for a in result["assertions"]}
    assert checks["rst_from.gateway->client"]["status"] == "fail"
    assert code == 1
    assert result["evidence"]["capture"]["findings"][0].startswith("Clients received")
    resets = [s for s in result["evidence"]["samples"] if s["outcome"] == "reset"]
    assert resets and any("client↔gateway" in p for s in resets for p in s["packets"])
    # the samples carry their own connection, and its packets are exactly that connection's
    matched = [s for s in result["evidence"]["samples"] if s["match"] == "connection"]
    assert matched, [(s["outcome"], s["match"], s["match_note"]) for s in result["evidence"]["samples"]]
    for sample in matched:
        port, remote = sample["connection"]["client_port"], sample["connection"]["remote"]
        assert all(f":{port} " in line and remote in line for line in sample["packets"]), sample
    rst_on_own_port = [s for s in matched if s["outcome"] == "reset" and any(
        f"→ {s['connection']['local']} [R" in line for line in s["packets"])]
    assert rst_on_own_port, [(s["outcome"], s["connection"], s["packets"]) for s in matched]
