"""A health path that answers 404 is not ready: exit 3, with what it answered and its logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def test_a_404_health_path_ends_the_run_with_exit_3_naming_status_and_body(tmp_path: Path) -> None:
    env = dict(os.environ, CHAOS_READY_TIMEOUT="3")
    proc = subprocess.run(
        [sys.executable, "-m", "chaos.cli", "run", "backend-reset", "--report-dir", str(tmp_path),
         "--set", "services.backend.health=/nope", "--set", "assertions=[]"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output
    assert "service 'backend' did not become ready" in output, output
    assert "GET /nope did not answer 2xx/3xx within 3s; last answer: HTTP 404" in output, output
    assert "Not Found" in output, output  # the start of the body it answered
    assert "last log lines of backend" in output, output
    assert "Traceback" not in output, output
    run_id = next(line.split("run=")[1].split()[0] for line in output.splitlines()
                  if "tearing down run=" in line)
    left = docker.from_env().containers.list(all=True, filters={"label": [f"gateway-chaos.run={run_id}"]})
    assert left == [], left
