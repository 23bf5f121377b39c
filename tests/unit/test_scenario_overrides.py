"""`--set` values go through the file loader's guards: one loading path, same refusals.

What a user sees is asserted: the exit code of `chaos validate` / `chaos run`, and one
error line naming `--set` and the key. `chaos run` must refuse before starting anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main
from chaos.errors import ScenarioError
from chaos.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
CRASH = str(ROOT / "scenarios" / "backend-crash.yaml")


@pytest.fixture(autouse=True)
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """`chaos run` must refuse before the engine (containers, proxies, load) is reached."""
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("run_scenario was called: the bad --set was not refused")

    monkeypatch.setattr("chaos.engine.run_scenario", forbidden)


def cli(capsys: pytest.CaptureFixture[str], command: str, *sets: str,
        tmp_path: Path | None = None) -> tuple[int, str]:
    args = [command, CRASH, *(a for s in sets for a in ("--set", s))]
    if command == "run" and tmp_path is not None:
        args += ["--report-dir", str(tmp_path)]
    code = main(args)
    return code, capsys.readouterr().err


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, item: str) -> str:
    """Both commands: exit 2, one line naming --set and the key, no traceback."""
    key = item.partition("=")[0]
    lines = []
    for command in ("validate", "run"):
        code, err = cli(capsys, command, item, tmp_path=tmp_path)
        assert code == 2, (command, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert err.startswith("--set:"), err
        assert key.split(".")[0] in err, err
        lines.append(err.strip())
    return lines[0]


def test_a_date_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(Path(CRASH).read_text())
    scenario = load_scenario(path, ["load.requests.0.json=2024-01-01"])
    assert scenario.load.requests[0].json_body == "2024-01-01"
    scenario = load_scenario(path, ["load.requests.0.json={when: 2024-01-01T10:00:00Z}"])
    assert scenario.load.requests[0].json_body == {"when": "2024-01-01T10:00:00Z"}


@pytest.mark.parametrize("value", ["!!set {a, b}", "!!binary aGVsbG8=",
                                   "!!python/object/apply:os.system ['true']",
                                   "{a: !!python/name:os.system ''}"])
def test_tags_outside_the_data_set_are_refused(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, value: str) -> None:
    line = refused(capsys, tmp_path, f"load.requests.0.json={value}")
    assert "tag" in line and "load.requests.0.json" in line, line


def test_an_alias_bomb_in_a_value_is_refused_quickly(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    letters = "abcdefghij"
    bomb = "[" + ", ".join(
        [f"&a [{', '.join(['x'] * 9)}]"]
        + [f"&{letters[i]} [{', '.join(['*' + letters[i - 1]] * 9)}]" for i in range(1, 9)]) + "]"
    started = time.monotonic()
    line = refused(capsys, tmp_path, f"load.requests.0.json={bomb}")
    assert time.monotonic() - started < 5
    assert "holds more than" in line, line


def test_a_value_nested_too_deep_is_refused(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    line = refused(capsys, tmp_path, "load.requests.0.json=" + "[" * 60 + "]" * 60)
    assert "nesting is too deep" in line


def test_depth_counts_from_where_the_value_lands(tmp_path: Path) -> None:
    """load.requests.0.json is level 4: 47 nested lists reach level 50 (allowed), 48 do not."""
    path = tmp_path / "s.yaml"
    path.write_text(Path(CRASH).read_text())
    load_scenario(path, ["load.requests.0.json=" + "[" * 47 + "]" * 47])
    with pytest.raises(ScenarioError, match="nesting is too deep"):
        load_scenario(path, ["load.requests.0.json=" + "[" * 48 + "]" * 48])


@pytest.mark.parametrize("item", ["phases.².duration=1s", "phases.٠.duration=1s",
                                  "phases." + "9" * 5000 + ".duration=1s"])
def test_list_indexes_are_ascii_digits(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       item: str) -> None:
    line = refused(capsys, tmp_path, item)
    assert "no list item" in line and len(line) < 300, line


@pytest.mark.parametrize("value", ["9" * 5000, "9" * 5000 + "s", "1" + "0" * 4400 + "ms"])
def test_a_5000_digit_duration_is_one_short_line(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, value: str) -> None:
    line = refused(capsys, tmp_path, f"phases.0.duration={value}")
    assert "phases[0].duration" in line and len(line) < 300, line


def test_a_value_that_is_not_yaml_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(Path(CRASH).read_text())
    scenario = load_scenario(path, ["services.gateway.env.X=a: b: c"])
    assert scenario.services["gateway"].env["X"] == "a: b: c"


def test_a_valid_override_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "validate", "services.gateway.env.GATEWAY_RETRIES=off",
                    "phases.1.duration=3s")
    assert (code, err) == (0, "")
