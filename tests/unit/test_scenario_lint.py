"""`chaos validate` warns about legal but suspicious scenarios (file:line: key: warning: ...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.cli import main

SCENARIO = """\
name: lint-demo
services:
  backend: {build: docker/backend, port: 8080}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load: {target: gateway, requests: [{name: get, path: /}]}
phases:
  - {name: baseline, duration: 2s}
  - name: down
    duration: 2s
    faults:
      - {container: ACTION_TARGET, action: ACTION}
  - {name: back, duration: 2s, faults: [{container: ACTION_TARGET, action: start}]}
"""


def _validate(tmp_path: Path, target: str, action: str,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], Path]:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("ACTION_TARGET", target).replace("ACTION", action))
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err.splitlines(), path


@pytest.mark.parametrize("action", ["kill", "stop", "restart", "pause"])
def test_a_fault_that_takes_down_the_load_target_is_warned_about(
        tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, path = _validate(tmp_path, "gateway", action, capsys)
    assert code == 0, "a warning never fails validation"
    assert len(err) == 1, err
    assert err[0].startswith(f"{path}:13: phases[1].faults[0].container: warning: this fault ")
    assert "gateway, the load target itself (load.target)" in err[0]


def test_faults_behind_the_target_and_restoring_actions_are_not_warned_about(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = _validate(tmp_path, "backend", "kill", capsys)
    assert (code, err) == (0, [])
    code, err, _ = _validate(tmp_path, "gateway", "unpause", capsys)
    assert (code, err) == (0, [])
