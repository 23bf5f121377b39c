"""chaos mutate without Docker: mutants, kills, the verdict on the scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.errors import ScenarioError
from chaos.mutate import default_mutants, mutate, parse_mutants, summary, table
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import Scenario
from chaos.verdict.result import AssertionResult, Result

ROOT = Path(__file__).resolve().parents[2]
CRASH = ROOT / "scenarios" / "backend-crash.yaml"


def test_default_mutants_are_the_reference_gateway_switches() -> None:
    mutants = default_mutants(load_scenario(CRASH))
    assert mutants["breaker-off"] == ["services.gateway.env.GATEWAY_BREAKER=off"]
    assert set(mutants) == {"retries-off", "breaker-off", "error-mapping-off", "timeouts-off"}
    nginx = load_scenario(CRASH, gateway="nginx:stock")
    assert default_mutants(nginx) == {}


def test_mutant_options_parse() -> None:
    got = parse_mutants(["nginx-stock=services.gateway.build=docker/gateways/nginx",
                         "two=a.b=1", "two=c.d=2"])
    assert got == {"nginx-stock": ["services.gateway.build=docker/gateways/nginx"],
                   "two": ["a.b=1", "c.d=2"]}
    with pytest.raises(ScenarioError):
        parse_mutants(["no-setting"])


def _fake(scenario: Scenario, root: Path, command: str) -> Result:
    """Fails only when the breaker is switched off."""
    env = scenario.services["gateway"].env
    broken = env.get("GATEWAY_BREAKER") in ("off", False)
    return Result(scenario=scenario.name, file="", run_id="x", started_at="", duration_s=1,
                  verdict="fail" if broken else "pass", exit_code=int(broken),
                  assertions=[AssertionResult("fault", "breaker.opens_within", "<= 5s",
                                              "never", not broken, "")],
                  report_dir=str(root / "x"))


def test_kills_are_counted_and_reported(tmp_path: Path) -> None:
    original, mutants, out = mutate(CRASH, default_mutants(load_scenario(CRASH)),
                                    report_root=tmp_path, run=_fake, log=lambda _: None)
    assert [m.name for m in mutants if m.killed] == ["breaker-off"]
    assert summary(original, mutants) == (0, "kills 1 of 4 mutants")
    assert "KILLED" in table(original, mutants)
    assert json.loads((out / "mutate.json").read_text())["exit_code"] == 0
    assert "breaker-off" in (out / "index.html").read_text()


def test_killing_nothing_asserts_nothing_useful(tmp_path: Path) -> None:
    original, mutants, _ = mutate(CRASH, {"retries-off": ["services.gateway.env.GATEWAY_RETRIES=off"]},
                                  report_root=tmp_path, run=_fake, log=lambda _: None)
    assert summary(original, mutants) == (1, "kills no mutant: this scenario asserts nothing useful")


def test_a_bad_mutant_is_bad_input(tmp_path: Path) -> None:
    assert main(["mutate", str(CRASH), "--mutant", "x=services.nope.env.A=1",
                 "--report-dir", str(tmp_path)]) == 2
