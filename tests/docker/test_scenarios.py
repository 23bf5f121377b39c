"""The walking skeleton, end to end on a real Docker engine.

Each test runs the `chaos` command as a user would and checks what a user sees:
the exit code, the verdict in result.json, the three report files, and that
nothing labelled by the run is left in Docker afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CHAOS = [sys.executable, "-m", "chaos.cli"]
OFF = "services.gateway.env.GATEWAY_RESILIENCE=off"


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


def run_chaos(args: list[str], report_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHAOS, *args, "--report-dir", str(report_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def only_run_dir(report_dir: Path) -> Path:
    runs = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, runs
    return runs[0]


def labelled(engine: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": [f"gateway-chaos.run={run_id}"]}
    names = [c.name for c in engine.containers.list(all=True, filters=label)]
    names += [n.name for n in engine.networks.list(filters=label)]
    names += [v.name for v in engine.volumes.list(filters=label)]
    return names


def check_run(engine: docker.DockerClient, report_dir: Path) -> dict:
    run_dir = only_run_dir(report_dir)
    for name in ("result.json", "junit.xml", "report.html"):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    result = json.loads((run_dir / "result.json").read_text())
    assert labelled(engine, result["run_id"]) == [], "the run left resources behind"
    return result


@pytest.fixture()
def bystander(engine: docker.DockerClient):
    """A container the harness did not create: it must survive every run."""
    container = engine.containers.run("gateway-chaos/base:bookworm", ["sleep", "600"],
                                      detach=True, name=f"bystander-{os.getpid()}-{time.time_ns()}")
    yield container
    container.remove(force=True)


@pytest.mark.parametrize("scenario", ["backend-crash", "backend-reset"])
def test_scenario_passes_against_the_reference_gateway(engine, bystander, tmp_path, scenario):
    proc = run_chaos(["run", scenario], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = check_run(engine, tmp_path)
    assert result["verdict"] == "pass"
    assert result["assertions"] and all(a["passed"] for a in result["assertions"])
    assert "verdict: PASS" in proc.stderr
    bystander.reload()
    assert bystander.status == "running"


@pytest.mark.parametrize("scenario, must_fail", [
    ("backend-crash", {"resets", "breaker.opens_within"}),
    ("backend-reset", {"resets", "ok_after_retry"}),
])
def test_scenario_fails_when_resilience_is_off(engine, tmp_path, scenario, must_fail):
    proc = run_chaos(["run", scenario, "--set", OFF], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = check_run(engine, tmp_path)
    assert result["verdict"] == "fail"
    failed = {a["kind"] for a in result["assertions"] if not a["passed"]}
    assert must_fail <= failed, failed
    resets = sum(p["counts"].get("reset", 0) for p in result["phase_stats"])
    assert resets > 0, "with error mapping off, clients must have seen TCP resets"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_tears_everything_down(engine, tmp_path, sig):
    proc = subprocess.Popen([*CHAOS, "run", "backend-crash", "--report-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        seen.append(line)
        if "phase fault" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # a fault is active: the backend has just been killed
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    result = check_run(engine, tmp_path)
    assert result["verdict"] == "interrupted"


def test_a_second_setup_builds_nothing():
    for _ in range(2):
        proc = subprocess.run([*CHAOS, "setup"], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
    assert "building" not in proc.stderr and "debootstrap" not in proc.stderr
