"""The loader and the witness's bounds (issue 18 item 4): allowed by default, refused with
the witness off (file:line:key, exit 2), never per request, never a nonsense value."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.loader import load_scenario
from tests.fixtures.scenarios import scenario_text

BOUNDS = ('attempts_per_request: "<= 3", upstream_timeout: "< 2s", '
          'retries_non_idempotent: 0, shed: "<= 0.05", retry_amplification: "<= 1.5"')


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


def _with(assertion: str, extra: str = "") -> str:
    return scenario_text(extra=extra).replace("  - {phase: baseline, resets: 0}\n",
                                              f"  - {{phase: baseline, {assertion}}}\n")


def test_witness_bounds_load_without_probes(tmp_path: Path) -> None:
    scenario = _load(tmp_path, _with(BOUNDS))
    [assertion] = scenario.assertions  # type: ignore[attr-defined]
    assert assertion.shed.value == 0.05 and assertion.upstream_timeout.value == 2.0


@pytest.mark.parametrize("key", ["attempts_per_request", "retry_amplification"])
def test_witness_bounds_refused_with_the_witness_off(tmp_path: Path, key: str) -> None:
    text = _with(f'{key}: "<= 2"', extra='witness: {use: "off"}\n')
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, text)
    error = info.value
    assert error.key == f"assertions[0].{key}" and "witness.use is off" in error.message
    assert error.line == [i for i, line in enumerate(text.splitlines(), 1) if key in line][0]


@pytest.mark.parametrize(("assertion", "fragment"), [
    ("shed: 1.5", "a rate is a share between 0 and 1"),
    ("attempts_per_request: -1", "never negative"),
    ('upstream_timeout: "< 700000000"', "out of range"),
    ("request: get, shed: 0", "cannot be bounded for one request"),
])
def test_witness_bounds_refuse_nonsense(tmp_path: Path, assertion: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, _with(assertion))
    assert fragment in info.value.message and info.value.exit_code == 2
