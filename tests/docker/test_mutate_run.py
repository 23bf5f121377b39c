"""chaos mutate: a scenario kills the mutants it claims to catch; one that kills none
is flagged. Real runs, shortened with --duration-scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def mutate(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "mutate", *args,
                           "--report-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=400)
    out = next(tmp_path.glob("mutate-*"))
    assert (out / "index.html").exists()
    return proc.returncode, proc.stdout + proc.stderr, json.loads((out / "mutate.json").read_text())


def test_backend_crash_kills_the_breaker_mutant(tmp_path: Path) -> None:
    code, output, report = mutate(tmp_path, "backend-crash", "--duration-scale", "0.6",
                                  "--no-default-mutants",
                                  "--mutant", "breaker-off=services.gateway.env.GATEWAY_BREAKER=off",
                                  "--mutant", "resilience-off=services.gateway.env."
                                  "GATEWAY_RESILIENCE=off")
    assert code == 0, output
    killed = {m["name"] for m in report["mutants"] if m["killed"]}
    assert killed == {"breaker-off", "resilience-off"}, output
    assert "KILLED" in output and "kills 2 of 2 mutants" in output


def test_a_scenario_that_kills_nothing_is_flagged(tmp_path: Path) -> None:
    # backend-reset asserts retries and error mapping; it says nothing about the breaker.
    code, output, report = mutate(tmp_path, "backend-reset", "--duration-scale", "0.5",
                                  "--no-default-mutants",
                                  "--mutant", "breaker-off=services.gateway.env.GATEWAY_BREAKER=off")
    assert report["original"]["verdict"] != "fail", output
    assert code == 1, output
    assert "asserts nothing useful" in output
    assert not report["mutants"][0]["killed"]
