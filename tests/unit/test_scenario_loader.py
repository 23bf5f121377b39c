"""Scenario files: the shipped ones validate; broken ones fail with file, line and key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chaos.errors import ScenarioError
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import ContainerFault, Scenario, ToxicFault
from tests.fixtures.scenarios import line_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))

# A small, valid scenario. Tests mutate one line of it and look for the line number of
# the mutated text, so the expected lines below are computed, never guessed.
BASE = """\
name: demo
description: A small scenario for loader tests.
services:
  backend:
    build: docker/backend
    port: 8080
  gateway:
    build: docker/gateway
    port: 8000
    env:
      UPSTREAM_URL: "${proxy.backend}"
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 5
  spawn_rate: 5
  requests:
    - {name: get, path: /api/items/1}
probes:
  breaker: {service: gateway}
phases:
  - name: baseline
    duration: 5s
  - name: fault
    duration: 10s
    faults:
      - proxy: backend
        toxic: {type: reset_peer, attributes: {timeout: 0}}
      - {container: backend, action: kill}
  - name: recovery
    duration: 5s
assertions:
  - {phase: baseline, success_rate: ">= 0.99", p95: "< 300ms"}
  - phase: fault
    resets: 0
    breaker: {opens_within: 5s}
  - {phase: recovery, recovers_within: 10s}
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _mutate(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


def _error(path: Path, overrides: list[str] | None = None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return info.value


# --------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.description
    assert scenario.load.target in scenario.services
    assert scenario.assertions
    assert scenario.total_duration() > 0


def test_both_shipped_scenarios_are_present() -> None:
    assert {p.stem for p in SHIPPED} >= {"backend-crash", "backend-reset"}


def test_backend_crash_kills_then_starts_the_backend() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "backend-crash.yaml")
    actions = [(p.name, f.action) for p in scenario.phases for f in p.faults
               if isinstance(f, ContainerFault)]
    assert actions == [("fault", "kill"), ("recovery", "start")]


def test_backend_reset_uses_the_reset_peer_toxic() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "backend-reset.yaml")
    toxics = [f for p in scenario.phases for f in p.faults if isinstance(f, ToxicFault)]
    assert [t.toxic.type for t in toxics] == ["reset_peer"]
    assert toxics[0].proxy in scenario.proxies


def test_base_scenario_is_valid_and_typed(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE))
    assert isinstance(scenario, Scenario)
    assert [p.duration for p in scenario.phases] == [5.0, 10.0, 5.0]
    assert scenario.total_duration() == 20.0
    fault = scenario.phases[1].faults
    assert isinstance(fault[0], ToxicFault) and fault[0].toxic.type == "reset_peer"
    assert isinstance(fault[1], ContainerFault) and fault[1].action == "kill"
    p95 = scenario.assertions[0].p95
    assert p95 is not None and p95.is_duration and p95.value == pytest.approx(0.3)
    resets = scenario.assertions[1].resets
    assert resets is not None and resets.holds(0) and not resets.holds(1)


def test_durations_in_every_unit(tmp_path: Path) -> None:
    for text, seconds in (("250ms", 0.25), ("1.5m", 90.0), ("2", 2.0), ("1h", 3600.0),
                          ("500us", 0.0005)):
        path = _write(tmp_path, _mutate("    duration: 10s", f"    duration: {text}"))
        assert load_scenario(path).phases[1].duration == pytest.approx(seconds), text


# --------------------------------------------------------------------------- --set


def test_set_env_value_off(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    scenario = load_scenario(path, ["services.gateway.env.GATEWAY_RETRIES=off"])
    assert scenario.services["gateway"].env_strings()["GATEWAY_RETRIES"] == "off"
    assert scenario.services["gateway"].env_strings()["UPSTREAM_URL"] == "${proxy.backend}"
    assert path.read_text() == BASE, "an override never writes the file"


def test_set_phase_duration_by_index(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE), ["phases.1.duration=3s"])
    assert [p.duration for p in scenario.phases] == [5.0, 3.0, 5.0]


def test_several_overrides_apply_in_order(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE),
                             ["load.users=50", "load.users=7", "phases.0.duration=1s"])
    assert scenario.load.users == 7
    assert scenario.phases[0].duration == 1.0


def test_set_works_on_shipped_scenario() -> None:
    path = ROOT / "scenarios" / "backend-crash.yaml"
    scenario = load_scenario(path, ["services.gateway.env.GATEWAY_BREAKER=off"])
    assert scenario.services["gateway"].env_strings()["GATEWAY_BREAKER"] == "off"


@pytest.mark.parametrize(("item", "fragment"), [
    ("phases.9.duration=3s", "no list item '9'"),
    ("phases.x.duration=3s", "no list item 'x'"),
    ("name.first=x", "cannot set below a plain value"),
    ("load.users.max=3", "cannot set below a plain value"),
    ("load.users", "KEY.PATH=VALUE"),
    ("=3", "KEY.PATH=VALUE"),
])
def test_set_bad_paths(tmp_path: Path, item: str, fragment: str) -> None:
    error = _error(_write(tmp_path, BASE), [item])
    text = error.render()
    assert fragment in text
    assert text.startswith("--set:"), text
    assert error.exit_code == 2
    assert "\n" not in text


def test_set_invalid_value_is_validated_like_the_file(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, BASE), ["load.users=-3"])
    assert error.key == "load.users"
    assert "greater than or equal to 1" in error.message


def test_set_unknown_key_is_refused(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, BASE), ["load.userz=3"])
    assert error.key == "load.userz"
    assert error.message.startswith("unknown key") and error.file == "--set"


def test_set_invalid_value_blames_the_override_not_the_file(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, BASE), ["phases.1.duration=10 parsecs"])
    assert "--set" in error.render()


# --------------------------------------------------------------------------- errors

# (mutation old, mutation new, expected key path, message fragment, text whose line is named)
ERRORS = {
    "unknown_key": ("  spawn_rate: 5", "  spawnrate: 5", "load.spawnrate", "unknown key",
                    "spawnrate"),
    "wrong_type": ("  users: 5", "  users: many", "load.users", "valid integer", "users: many"),
    "negative_users": ("  users: 5", "  users: -1", "load.users", "greater than or equal to 1",
                       "users: -1"),
    "bad_duration": ("    duration: 10s", "    duration: 10 parsecs", "phases[1].duration",
                     "expected a duration like 250ms or 10s", "parsecs"),
    "zero_duration": ("    duration: 10s", "    duration: 0s", "phases[1].duration",
                      "longer than 0s", "duration: 0s"),
    "unknown_target": ("  target: gateway", "  target: gatway", "load.target",
                       "unknown service 'gatway' (known: backend, gateway)", "gatway"),
    "unknown_container": ("{container: backend, action: kill}",
                          "{container: backnd, action: kill}", "phases[1].faults[1].container",
                          "unknown service 'backnd'", "backnd"),
    "unknown_proxy": ("      - proxy: backend", "      - proxy: backnd",
                      "phases[1].faults[0].proxy", "unknown proxy 'backnd' (known: backend)",
                      "backnd"),
    "unknown_phase": ("{phase: recovery,", "{phase: recovry,", "assertions[2].phase",
                      "unknown phase 'recovry'", "recovry"),
    "duplicate_phase": ("  - name: recovery", "  - name: baseline", "phases[2].name",
                        "phase name 'baseline' is used twice", "- name: baseline"),
    "duplicate_yaml_key": ("  users: 5\n", "  users: 5\n  users: 6\n", "load.users",
                           "duplicate key 'users'", "users: 6"),
    "bad_comparison": ('p95: "< 300ms"', "p95: fast", "assertions[0].p95",
                       "expected a comparison like '>= 0.99' or '< 300ms', got 'fast'",
                       "p95: fast"),
    "neither_fault": ("{container: backend, action: kill}", "{signal: backend}",
                      "phases[1].faults[1]", "a fault is either {proxy, toxic}",
                      "signal"),
    "bad_action": ("action: kill}", "action: explode}", "phases[1].faults[1].action",
                   "'kill', 'start'", "explode"),
    "bad_toxic_type": ("type: reset_peer", "type: reset_pear", "phases[1].faults[0].toxic.type",
                       "'latency'", "reset_pear"),
    "unknown_env_ref": ('"${proxy.backend}"', '"${proxy.frontend}"',
                        "services.gateway.env.UPSTREAM_URL", "unknown proxy 'frontend'",
                        "frontend"),
    "unknown_probe_service": ("{service: gateway}", "{service: gw}", "probes.breaker.service",
                              "unknown service 'gw'", "{service: gw}"),
    "bad_name": ("name: demo", "name: Demo Scenario", "name", "should match pattern",
                 "Demo Scenario"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    old, new, key, fragment, line_text = ERRORS[case]
    text = _mutate(old, new)
    path = _write(tmp_path, text)
    error = _error(path)
    if case == "duplicate_phase":  # the later of the two "- name: baseline" lines
        expected_line = [i for i, line in enumerate(text.splitlines(), 1)
                         if line_text in line][-1]
    else:
        expected_line = line_of(text, line_text)
    assert error.file == str(path)
    assert error.key == key
    assert fragment in error.message
    assert error.line == expected_line, error.render()
    assert error.render() == f"{path}:{expected_line}: {key}: {error.message}"
    assert "\n" not in error.render()
    assert error.exit_code == 2


def test_breaker_assertion_needs_a_probe_when_the_witness_is_off(tmp_path: Path) -> None:
    text = _mutate("probes:\n  breaker: {service: gateway}\n", "witness: {use: \"off\"}\n")
    error = _error(_write(tmp_path, text))
    assert error.key == "assertions[1].breaker"
    assert "probes.breaker" in error.message and "witness.use is off" in error.message
    assert error.line == line_of(text, "breaker: {opens_within")


def test_breaker_assertion_without_a_probe_is_judged_by_the_witness(tmp_path: Path) -> None:
    text = _mutate("probes:\n  breaker: {service: gateway}\n", "")
    scenario = load_scenario(_write(tmp_path, text))
    assert scenario.probes.breaker is None and scenario.assertions[1].breaker is not None


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = _mutate("  users: 5\n", "  users: 5: 6\n")
    path = _write(tmp_path, text)
    error = _error(path)
    assert error.line == line_of(text, "users: 5: 6")
    assert error.render().startswith(f"{path}:{error.line}: not valid YAML: ")
    assert "mapping values are not allowed" in error.message


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    text = _mutate("  users: 5\n", "\tusers: 5\n")
    error = _error(_write(tmp_path, text))
    assert error.line == line_of(text, "\tusers")
    assert "not valid YAML" in error.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    error = _error(path)
    assert error.line == 1
    assert "empty" in error.message
    assert error.render().startswith(f"{path}:1: ")


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, "- name: demo\n"))
    assert error.line == 1
    assert "mapping" in error.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    error = _error(path)
    assert error.file == str(path)
    assert "cannot read" in error.message


def test_missing_required_section(tmp_path: Path) -> None:
    text = BASE.split("phases:\n")[0]  # no phases, no assertions
    error = _error(_write(tmp_path, text))
    assert error.key == "phases"
    assert error.message == "required key is missing"


def test_first_problem_is_reported_with_a_count_of_the_rest(tmp_path: Path) -> None:
    text = _mutate("  users: 5\n  spawn_rate: 5\n", "  users: lots\n  spawn_rate: -1\n")
    error = _error(_write(tmp_path, text))
    assert error.key == "load.users"
    assert error.message.endswith("(and 1 more problem)")


def test_typo_in_a_key_fails_loudly(tmp_path: Path) -> None:
    """`durration` instead of `duration`: the file is refused, at the phase that has it."""
    text = _mutate("    duration: 10s", "    durration: 10s")
    path = _write(tmp_path, text)
    error = _error(path)
    assert error.file == str(path)
    assert error.key.startswith("phases[1]")
    assert line_of(text, "- name: fault") <= (error.line or 0) <= line_of(text, "durration")


def test_typo_in_a_key_names_the_typo_and_its_line(tmp_path: Path) -> None:
    text = _mutate("    duration: 10s", "    durration: 10s")
    error = _error(_write(tmp_path, text))
    assert "durration" in error.render()
    assert error.line == line_of(text, "durration")


# --------------------------------------------------------------------------- YAML tags


@pytest.mark.parametrize(("old", "new"), [
    ("description: A small scenario for loader tests.",
     'description: !!python/object/apply:os.system ["touch {marker}"]'),
    ("    - {name: get, path: /api/items/1}",
     '    - {name: get, path: /x, json: !!python/object/apply:os.system ["touch {marker}"]}'),
    ('      UPSTREAM_URL: "${proxy.backend}"',
     '      UPSTREAM_URL: "${proxy.backend}"\n'
     '      X: !!python/object/apply:subprocess.call [["touch", "{marker}"]]'),
    ("description: A small scenario for loader tests.",
     "description: !!python/object/new:os.system [\"touch {marker}\"]"),
], ids=["description-apply", "json-body-apply", "env-subprocess", "description-new"])
def test_python_tags_never_execute(tmp_path: Path, old: str, new: str) -> None:
    """Scenario files are data: a python/* tag must not run anything, whatever happens next."""
    marker = tmp_path / "executed"
    path = _write(tmp_path, _mutate(old, new.replace("{marker}", str(marker))))
    try:
        scenario = load_scenario(path)
    except ScenarioError:
        pass
    else:
        dumped = scenario.model_dump(mode="json")
        yaml.safe_dump(dumped)  # plain data only: no Python objects slipped through
    assert not marker.exists(), "a YAML tag executed code"


def test_python_tags_refused_where_the_shape_is_wrong(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    text = _mutate("description: A small scenario for loader tests.",
                   f'description: !!python/object/apply:os.system ["touch {marker}"]')
    error = _error(_write(tmp_path, text))
    assert error.key == "description"
    assert error.line == line_of(text, "description:")
    assert not marker.exists()


@pytest.mark.parametrize(("old", "new"), [
    ("description: A small scenario for loader tests.",
     "description: !!python/object:os.system hi"),
    ("description: A small scenario for loader tests.",
     "description: !!python/name:os.system ''"),
    ("    - {name: get, path: /api/items/1}",
     '    - {name: get, path: /x, json: !!python/object/apply:os.system ["true"]}'),
], ids=["description-object", "description-name", "json-body-apply"])
def test_python_tags_are_refused(tmp_path: Path, old: str, new: str) -> None:
    text = _mutate(old, new)
    error = _error(_write(tmp_path, text))
    assert error.line == line_of(text, "!!python")
    assert re.search(r"tag|python", error.message)
