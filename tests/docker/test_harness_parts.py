"""A part of the harness dies mid-run: exit 3 naming it, never a verdict on the gateway.

`docker kill` of the run's own Toxiproxy container while a toxic is active used to give
FAIL (exit 1, `[recovery] recovers_within`), blaming the gateway. Now the run stops
with exit 3, says the proxy died and how, writes result.json with an environment_error
record (the part, the time, the affected seconds), and removes everything it made.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import docker
import pytest

from tests.fixtures.runs_live import run_until

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
LEDGERS = Path(os.environ.get("CHAOS_STATE_DIR", ROOT / ".chaos")) / "runs"
SHORT = ["--set", "phases.0.duration=2s", "--set", "phases.1.duration=8s",
         "--set", "phases.2.duration=4s"]


def test_killed_toxiproxy_container_is_exit_3_naming_the_proxy(tmp_path: Path) -> None:
    client = docker.from_env()
    proc, run_id, seen = run_until(["backend-reset", *SHORT], tmp_path, timeout=180)
    labels = [f"gateway-chaos.run={run_id}", "gateway-chaos.service=toxiproxy"]
    (proxy,) = client.containers.list(filters={"label": labels})
    time.sleep(0.5)
    killed_at = time.monotonic()
    proxy.kill()
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 3, output
    assert time.monotonic() - killed_at < 30, "the run stopped soon after the proxy died"
    assert "harness part failed" in output and "Toxiproxy server" in output, output
    assert "exited with code 137 (killed by SIGKILL)" in output, output
    assert "recovers_within" not in output, "no assertion is judged on a broken harness"
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["verdict"], result["exit_code"]) == ("error", 3)
    record = result["environment_error"]
    assert "Toxiproxy server" in record["part"] and "137" in record["how"], record
    fault = next(p for p in result["phases"] if p["name"] == "fault")
    assert fault["start"] <= record["at"] <= record["affected_to"], (record, fault)
    assert 'id="harness-failure"' in (run_dir / "report.html").read_text()
    run_label = {"label": f"gateway-chaos.run={run_id}"}
    assert client.containers.list(all=True, filters=run_label) == []
    assert client.networks.list(filters=run_label) == []
    assert not (LEDGERS / f"{run_id}.ndjson").exists(), "the run's ledger is gone"
