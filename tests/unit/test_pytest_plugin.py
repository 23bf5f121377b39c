"""The pytest plugin: scenario files as items, fixtures for Python scenario tests (pytester)."""

from __future__ import annotations

import textwrap

import pytest

from tests.fixtures.scenarios import MINIMAL, scenario_text

pytest_plugins = ["pytester"]



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
