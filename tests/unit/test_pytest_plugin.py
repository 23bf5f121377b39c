"""The pytest plugin: scenario files as items, fixtures for Python scenario tests (pytester)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.scenarios import MINIMAL, scenario_text

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
RESET = (ROOT / "scenarios" / "backend-reset.yaml").read_text(encoding="utf-8")
SHORT = ["phases.0.duration=2s", "phases.1.duration=4s", "phases.2.duration=2s",
         "assertions=[{phase: fault, resets: 0}]"]


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


def test_one_item_per_scenario_file_and_other_yaml_is_ignored(pytester: pytest.Pytester) -> None:
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "first.yaml").write_text(MINIMAL)
    pytester.path.joinpath("scenarios", "second.yml").write_text(scenario_text(name="second"))
    pytester.path.joinpath("scenarios", "notes.yaml").write_text("just: some yaml\n")
    pytester.path.joinpath("other.yaml").write_text(MINIMAL)
    result = pytester.runpytest("--collect-only", "-q", "scenarios")
    result.stdout.fnmatch_lines(["scenarios/first.yaml::first", "scenarios/second.yml::second",
                                 "2 tests collected*"])
    assert "notes" not in result.stdout.str()


def test_an_invalid_scenario_fails_with_one_clear_line(pytester: pytest.Pytester) -> None:
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "broken.yaml").write_text(
        MINIMAL.replace("duration: 2s", "duration: 2 parsecs"))
    result = pytester.runpytest("scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r".*scenarios/broken\.yaml:\d+: phases\[0\]\.duration: "
                                  r"expected a duration.*"])
    assert "Traceback" not in result.stdout.str()


def test_chaos_set_applies_to_collected_scenarios(pytester: pytest.Pytester) -> None:
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "tiny.yaml").write_text(MINIMAL)
    result = pytester.runpytest("scenarios", "--chaos-set", "phases.0.duration=-1s")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r".*--set.*phases\[0\]\.duration.*"])


def test_chaos_scenario_fixture_loads_with_overrides(pytester: pytest.Pytester) -> None:
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "tiny.yaml").write_text(MINIMAL)
    pytester.makepyfile(test_tiny=textwrap.dedent("""
        def test_it(chaos_scenario):
            scenario = chaos_scenario("scenarios/tiny.yaml", set=["phases.0.duration=7s"])
            assert scenario.total_duration() == 7.0
            assert scenario.start_order() == ["backend", "gateway"]
    """))
    pytester.runpytest("test_tiny.py").assert_outcomes(passed=1)


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--chaos-set*"])


@pytest.mark.docker
def test_scenarios_and_fixtures_run_on_docker(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing scenario item (resilience off) and a passing chaos_run test, in one session."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if "DOCKER_HOST" in os.environ:  # pragma: no cover
        pytest.skip("DOCKER_HOST set")
    pytester.mkdir("scenarios")
    off = RESET.replace('UPSTREAM_URL: "${proxy.backend}"',
                        'UPSTREAM_URL: "${proxy.backend}"\n      GATEWAY_RESILIENCE: "off"')
    assert off != RESET
    pytester.path.joinpath("scenarios", "reset-off.yaml").write_text(off)
    pytester.makepyfile(test_fixture=textwrap.dedent(f"""
        def test_reference_gateway_never_passes_a_reset(chaos_run):
            result = chaos_run({str(ROOT / "scenarios" / "backend-reset.yaml")!r}, set={SHORT!r})
            assert result.verdict == "pass", result.failed_assertions
            assert result.phase_stats
    """))
    args = [f"--chaos-set={s}" for s in SHORT]
    result = pytester.runpytest_subprocess("scenarios", "test_fixture.py", *args, "-p",
                                           "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([r".*verdict fail \(exit 1\).*", r".*\[fault\] resets.*"])
