"""chaos explore against the reference gateway (real runs, kept short).

- With every mechanism off (GATEWAY_RESILIENCE=off), a small search over the full
  fault set finds a failing schedule, and the YAML it writes replays the failure.
- Against the full gateway a tiny search finds nothing. That search is restricted to
  `--faults reset_peer`: the reference gateway is designed to survive an upstream
  reset (a graceful 502, the breaker, recovery), while other toxics with large drawn
  values (latency 1.5 s, a 1 KB/s bandwidth) legitimately break backend-crash's
  `p99 < 1s` bound on any gateway. The first example Hypothesis draws is the
  simplest, so --max-examples 1 runs reset_peer(timeout=0) on every connection.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def chaos(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_explore_finds_a_failing_schedule_that_replays(tmp_path: Path) -> None:
    found_dir = tmp_path / "found"
    proc = chaos("explore", "backend-crash", "--set", "services.gateway.env.GATEWAY_RESILIENCE=off",
                 "--max-examples", "4", "--phase-duration", "3s", "--seed", "1",
                 "--time-budget", "100s", "--report-dir", str(tmp_path / "reports"),
                 "--found-dir", str(found_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.parent == found_dir and path.exists(), proc.stdout
    text = path.read_text()
    assert "# It broke these assertions (observed vs bound):" in text
    summary = next((tmp_path / "reports").glob("explore-*/index.html")).read_text()
    assert "Found a failing schedule" in summary
    replay = chaos("run", str(path), "--quiet", "--report-dir", str(tmp_path / "replay"))
    assert replay.returncode == 1, replay.stdout + replay.stderr


def test_explore_finds_nothing_against_the_full_gateway(tmp_path: Path) -> None:
    found_dir = tmp_path / "found"
    proc = chaos("explore", "backend-crash", "--faults", "reset_peer", "--max-examples", "1",
                 "--phase-duration", "5s", "--seed", "1", "--time-budget", "90s",
                 "--report-dir", str(tmp_path / "reports"), "--found-dir", str(found_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing found" in proc.stdout
    assert not found_dir.exists() or not list(found_dir.iterdir())
