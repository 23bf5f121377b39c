"""The scenario library, end to end: every scenario passes against the reference gateway,
and each one's documented mutant (one mechanism switched off) fails on the assertion
the scenario's header names.

The mutant is read from the scenario's own header comment, so the documentation and
this test cannot drift apart::

    # mutant: --set services.gateway.env.GATEWAY_RETRIES=off fails ok_after_retry

Scenarios without a `# mutant:` line (those of other suites, e.g. the netfault ones)
are not part of this library run.

The LLM library (scenarios/llm-*.yaml that run docker/llm-provider) is large; CI runs a
representative three of it (a 429 fallback, a first-token stall, a mid-stream cut), the
rest run with CHAOS_FULL_LIBRARY=1 (`make library`).

A run that another Docker test already makes, with the same overrides and stronger checks,
is not made twice (RUN_ELSEWHERE); a check here keeps that other test naming the scenario,
the switch and the assertion, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
CHAOS = [sys.executable, "-m", "chaos.cli"]
MUTANT_LINE = re.compile(r"^#\s*mutant:\s*(?P<args>.+?)\s+fails\s+(?P<kind>[\w.-]+)\s*$")
RUN_TIMEOUT_S = 300


@dataclass(frozen=True)
class Mutant:
    scenario: str
    overrides: tuple[str, ...]
    fails: str


def read_mutant(path: Path) -> Mutant | None:
    """The `# mutant: --set K=V [--set K=V ...] fails KIND` line of a scenario header."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = MUTANT_LINE.match(line)
        if match is None:
            continue
        words = shlex.split(match["args"])
        if len(words) % 2 or any(flag != "--set" for flag in words[::2]):
            raise ValueError(f"{path.name}: mutant line must be '--set K=V ... fails KIND'")
        return Mutant(path.stem, tuple(words[1::2]), match["kind"])
    return None


def library() -> list[Mutant]:
    found = [read_mutant(p) for p in sorted(SCENARIOS.glob("*.yaml"))]
    return [m for m in found if m is not None]


LIBRARY = library()
IDS = [m.scenario for m in LIBRARY]
# The LLM library: scenarios on the fault-scriptable provider. CI runs these three of it.
LLM_LIBRARY = {p.stem for p in SCENARIOS.glob("llm-*.yaml")
               if "docker/llm-provider" in p.read_text(encoding="utf-8")}
LLM_IN_CI = {"llm-rate-limit-fallback", "llm-first-token-stall", "llm-midstream-cut"}
FULL_LIBRARY = os.environ.get("CHAOS_FULL_LIBRARY", "") == "1"
# scenarios whose load speaks https (load.tls): the phases that must see new handshakes
LOAD_TLS = {"gateway-cert-rotation": ("rotate", "after")}
# (scenario, "pass" | "mutant") -> the Docker test that makes that very run, with more checks.
RUN_ELSEWHERE = {
    ("backend-crash", "pass"): "test_scenarios.py",  # + report files, cleanup, a bystander
    ("backend-reset", "pass"): "test_scenarios.py",
    ("backend-crash", "mutant"): "test_scenarios.py",  # GATEWAY_RESILIENCE=off: + resets > 0
    ("backend-reset", "mutant"): "test_verdict_matrix.py",  # GATEWAY_RETRIES=off: + must_hold
}


def cases(run: str) -> list:
    """Every library scenario for the `run` ("pass" or "mutant"), the LLM ones outside
    LLM_IN_CI skipped unless CHAOS_FULL_LIBRARY=1, and those in RUN_ELSEWHERE skipped."""
    skip = pytest.mark.skipif(not FULL_LIBRARY, reason="LLM library: CHAOS_FULL_LIBRARY=1 "
                              "(make library) runs every scenario")

    def marks(m: Mutant) -> list:
        if (m.scenario, run) in RUN_ELSEWHERE:
            return [pytest.mark.skip(reason="the same run, with more checks, is made by "
                                            f"tests/docker/{RUN_ELSEWHERE[m.scenario, run]}")]
        return [skip] if m.scenario in LLM_LIBRARY - LLM_IN_CI else []

    return [pytest.param(m, id=m.scenario, marks=marks(m)) for m in LIBRARY]


def run_chaos(scenario: str, overrides: tuple[str, ...], report_dir: Path
              ) -> tuple[subprocess.CompletedProcess[str], dict]:
    args = ["run", scenario, "--quiet", "--report-dir", str(report_dir)]
    for item in overrides:
        args += ["--set", item]
    proc = subprocess.run([*CHAOS, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    runs = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    result = json.loads((runs[0] / "result.json").read_text()) if len(runs) == 1 else {}
    if len(runs) == 1:  # a TLS run's CA, keys and certificates go with the run (issue 22)
        assert not (runs[0] / "tls").exists(), f"{scenario} left its TLS folder behind"
    return proc, result


def handshake_times(report_dir: Path, phase: str) -> int:
    """How many requests of the run's `phase` recorded a TLS handshake (tls_ms)."""
    (run,) = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    with (run / "requests.ndjson").open(encoding="utf-8") as records:
        rows = (json.loads(line) for line in records)
        return sum(1 for r in rows if r["phase"] == phase and "tls_ms" in r)


def failed_kinds(result: dict) -> set[str]:
    return {a["kind"] for a in result.get("assertions", []) if not a["passed"]}


@pytest.fixture(scope="module", autouse=True)
def library_clock():
    """Report how long the whole library took (it must stay well under 20 minutes)."""
    started = time.monotonic()
    yield
    print(f"\nscenario library: {len(LIBRARY)} scenarios x 2 runs in "
          f"{time.monotonic() - started:.0f}s", file=sys.stderr)


def test_every_library_scenario_documents_a_mutant():
    names = {p.stem for p in SCENARIOS.glob("*.yaml")}
    expected = {"backend-crash", "backend-reset", "slow-backend", "network-partition",
                "flapping-backend", "slow-close", "bandwidth-cap", "large-request",
                "upstream-rate-limit", "llm-stream-cut", "long-stream-timeout",
                "backend-pause", "backend-oom", "gateway-overload", "client-timeout-budget"}
    assert expected <= names, expected - names
    assert expected <= set(IDS), expected - set(IDS)
    assert len(LLM_LIBRARY) >= 10 and LLM_IN_CI <= LLM_LIBRARY
    assert set(IDS) >= LLM_LIBRARY, LLM_LIBRARY - set(IDS)  # each one documents its mutant


def test_the_runs_made_elsewhere_are_made_there():
    by_name = {m.scenario: m for m in LIBRARY}
    for (scenario, run), test_file in RUN_ELSEWHERE.items():
        text = (ROOT / "tests" / "docker" / test_file).read_text(encoding="utf-8")
        assert f'"{scenario}"' in text, f"{test_file} no longer runs {scenario}"
        if run == "mutant":
            mutant = by_name[scenario]
            switches = [item.split("=")[0].rsplit(".", 1)[-1] for item in mutant.overrides]
            for needed in [*switches, mutant.fails]:
                assert needed in text, f"{test_file} no longer checks {scenario}'s {needed}"


@pytest.mark.parametrize("mutant", cases("pass"))
def test_scenario_passes_against_the_reference_gateway(tmp_path, mutant):
    proc, result = run_chaos(mutant.scenario, (), tmp_path)
    detail = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{mutant.scenario}: {failed_kinds(result)}\n{detail}"
    assert result["verdict"] == "pass"
    for phase in LOAD_TLS.get(mutant.scenario, ()):  # the load's TLS met the fault: new
        assert handshake_times(tmp_path, phase) > 10, phase  # handshakes all through it


@pytest.mark.parametrize("mutant", cases("mutant"))
def test_documented_mutant_fails_on_the_named_assertion(tmp_path, mutant):
    proc, result = run_chaos(mutant.scenario, mutant.overrides, tmp_path)
    detail = proc.stdout + proc.stderr
    assert proc.returncode == 1, detail
    assert result["verdict"] == "fail"
    assert mutant.fails in failed_kinds(result), (
        f"{mutant.scenario} with {' '.join(mutant.overrides)} failed "
        f"{sorted(failed_kinds(result))}, not {mutant.fails}\n{detail}")
