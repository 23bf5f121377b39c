"""The `chaos` command as a user runs it: a subprocess, exit codes, what lands on stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures.scenarios import DESCRIPTION, MINIMAL

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
_SCRIPT = Path(sys.executable).with_name("chaos")
CHAOS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "chaos.cli"]

# file:line: key.path: message   (key paths look like phases[1].faults[0].proxy)
ONE_LINE = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?P<key>[A-Za-z0-9_.\[\]-]+): "
                      r"(?P<message>[^\n]+)$")



def _chaos(*args: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Anything that tries to reach Docker would find nothing here.
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker-here.sock"
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([*CHAOS, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _malformed(tmp_path: Path, old: str, new: str, name: str = "broken.yaml") -> Path:
    assert MINIMAL.count(old) == 1
    path = tmp_path / name
    path.write_text(MINIMAL.replace(old, new))
    return path


def _line_of(path: Path, needle: str) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1
    return hits[0]


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


MALFORMED = {
    "unknown_key": ("  users: 2", "  userz: 2", "load.userz", "userz"),
    "bad_duration": ("    duration: 2s", "    duration: 10 parsecs", "phases[0].duration",
                     "parsecs"),
    "unknown_target": ("  target: gateway", "  target: gatway", "load.target", "gatway"),
    "unknown_phase": ("{phase: baseline,", "{phase: basline,", "assertions[0].phase",
                      "basline"),
}


def test_validate_shipped_scenarios(tmp_path: Path) -> None:
    proc = _chaos("validate", *[str(p.relative_to(ROOT)) for p in SHIPPED], tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for path in SHIPPED:
        assert re.search(rf"^ok .*{re.escape(path.name)}: {path.stem} ", proc.stdout, re.M)


def test_validate_accepts_a_bare_scenario_name(tmp_path: Path) -> None:
    proc = _chaos("validate", "backend-crash", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "backend-crash" in proc.stdout


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_validate_malformed_prints_one_line(tmp_path: Path, case: str) -> None:
    old, new, key, needle = MALFORMED[case]
    path = _malformed(tmp_path, old, new)
    proc = _chaos("validate", str(path), tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    match = ONE_LINE.match(lines[0])
    assert match, lines[0]
    assert match["file"] == str(path)
    assert int(match["line"]) == _line_of(path, needle)
    assert match["key"] == key
    assert proc.stdout == ""


def test_validate_invalid_yaml_and_empty_file(tmp_path: Path) -> None:
    bad = _malformed(tmp_path, "  users: 2", "  users: 2: 3")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    for path, line in ((bad, _line_of(bad, "users: 2: 3")), (empty, 1)):
        proc = _chaos("validate", str(path), tmp_path=tmp_path)
        assert proc.returncode == 2
        _no_traceback(proc)
        assert proc.stderr.count("\n") == 1
        assert proc.stderr.startswith(f"{path}:{line}: "), proc.stderr


def test_validate_good_and_bad_together(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    bad = _malformed(tmp_path, "  users: 2", "  users: -2")
    proc = _chaos("validate", str(good), str(bad), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"ok {good}: demo ")
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"{bad}:{_line_of(bad, 'users: -2')}: load.users: ")


def test_validate_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = _chaos("validate", str(missing), tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"{missing}: ")


def test_validate_with_set(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    proc = _chaos("validate", str(good), "--set", "phases.0.duration=7s", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "7s)" in proc.stdout
    proc = _chaos("validate", str(good), "--set", "phases.3.duration=7s", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["--set: phases.3.duration: no list item '3' in phases"]


@pytest.mark.parametrize("case", ["unknown_key", "bad_duration"])
def test_run_malformed_exits_2_and_creates_nothing(tmp_path: Path, case: str) -> None:
    old, new, key, needle = MALFORMED[case]
    path = _malformed(tmp_path, old, new)
    reports = tmp_path / "reports"
    started = time.monotonic()
    proc = _chaos("run", str(path), "--report-dir", str(reports), tmp_path=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    match = ONE_LINE.match(lines[0])
    assert match and match["key"] == key and int(match["line"]) == _line_of(path, needle)
    assert not reports.exists(), "a report folder was created for an invalid scenario"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]
    assert elapsed < 5.0, f"took {elapsed:.1f}s: it should stop before any environment work"


def test_run_with_bad_set_path_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = _chaos("run", "scenarios/backend-reset.yaml", "--set", "phases.7.duration=1s",
                  "--report-dir", str(reports), tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert proc.stderr.splitlines() == ["--set: phases.7.duration: no list item '7' in phases"]
    assert not reports.exists()


def test_run_missing_scenario_name(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = _chaos("run", "no-such-scenario", "--report-dir", str(reports), tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert len(proc.stderr.splitlines()) == 1
    assert "no-such-scenario" in proc.stderr
    assert not reports.exists()


def test_run_unknown_name_says_no_such_scenario_and_points_to_list(tmp_path: Path) -> None:
    proc = _chaos("run", "backend-crsh", "--report-dir", str(tmp_path / "r"), tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert proc.stderr.splitlines() == [
        "backend-crsh: no scenario named 'backend-crsh' (no such file, and no "
        "scenarios/backend-crsh.yaml; did you mean 'backend-crash'?); `chaos list` shows them"]
    missing = tmp_path / "nope.yaml"
    proc = _chaos("run", str(missing), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{missing}: no such scenario file; `chaos list` shows the scenario library"]


def test_list_prints_names_and_descriptions(tmp_path: Path) -> None:
    proc = _chaos("list", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for path in SHIPPED:
        description = yaml.safe_load(path.read_text())["description"]
        assert re.search(rf"^{re.escape(path.stem)}\s+{re.escape(description)}$",
                         proc.stdout, re.M), proc.stdout
    assert "INVALID" not in proc.stdout


def test_list_marks_an_invalid_scenario(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "good.yaml").write_text(MINIMAL)
    _malformed(folder, "  users: 2", "  users: -2", name="bad.yaml")
    proc = _chaos("list", str(folder), tmp_path=tmp_path)
    assert proc.returncode == 0
    _no_traceback(proc)
    assert re.search(rf"^good\s+{re.escape(DESCRIPTION)}$", proc.stdout, re.M)
    assert re.search(r"^bad\s+INVALID: .*load\.users", proc.stdout, re.M)


def test_list_empty_folder(tmp_path: Path) -> None:
    proc = _chaos("list", str(tmp_path), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "no scenarios" in proc.stderr


@pytest.mark.parametrize("args", [["frobnicate"], [], ["run"], ["validate"],
                                  ["run", "x.yaml", "--no-such-flag"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    proc = _chaos(*args, tmp_path=tmp_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert "usage: chaos" in proc.stderr


def test_help_exits_0(tmp_path: Path) -> None:
    proc = _chaos("--help", tmp_path=tmp_path)
    assert proc.returncode == 0
    for command in ("run", "validate", "list"):
        assert command in proc.stdout
