"""The pytest plugin on Docker: a scenario item and a chaos_run test in one pytest session.

The pure parts (collection, --chaos-set, the chaos_scenario fixture) are in
tests/unit/test_pytest_plugin.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
RESET = (ROOT / "scenarios" / "backend-reset.yaml").read_text(encoding="utf-8")
SHORT = ["phases.0.duration=2s", "phases.1.duration=4s", "phases.2.duration=2s",
         "assertions=[{phase: fault, resets: 0}]"]


@pytest.mark.docker
def test_scenarios_and_fixtures_run_on_docker(pytester: pytest.Pytester) -> None:
    """A failing scenario item (resilience off) and a passing chaos_run test, in one session."""
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
