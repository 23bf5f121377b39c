"""How `load.rate`, `arrival` and `max_in_flight` reach Locust, and what a bad mix says."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.cli import main
from chaos.load.runner import LocustProcess
from chaos.scenario.model import Load

SCENARIO = """\
name: arrivals
services:
  gateway: {build: docker/gateway, port: 8000}
load:
  target: gateway
  LOAD
  requests: [{name: get, path: /}]
phases: [{name: steady, duration: 2s}]
"""


def _load(**fields: object) -> Load:
    return Load(target="t", requests=[{"name": "get", "path": "/"}], **fields)


def test_a_rate_means_open_arrivals_one_scheduler_per_process(tmp_path: Path) -> None:
    proc = LocustProcess(_load(rate=50, users=3, processes=2), "http://127.0.0.1:1", tmp_path, 10)
    command = proc.command()
    assert command[command.index("-u") + 1] == "2" and command[command.index("-r") + 1] == "2"
    config = proc._config()
    assert config["arrival"] == "open" and config["schedulers"] == 2
    assert config["pool"] == 50 * (2.0 + 5.0), "every request may take its full timeouts"
    assert _load(rate=50, max_in_flight=8).max_in_flight == 8


def test_closed_arrivals_keep_users_and_spawn_rate(tmp_path: Path) -> None:
    for load in (_load(rate=50, users=3, spawn_rate=1.5, arrival="closed"),
                 _load(users=3, spawn_rate=1.5)):
        proc = LocustProcess(load, "http://127.0.0.1:1", tmp_path, 10)
        command = proc.command()
        assert command[command.index("-u") + 1] == "3"
        assert command[command.index("-r") + 1] == "1.5"
        assert proc._config()["arrival"] == "closed"


@pytest.mark.parametrize(("load", "key", "needle"), [
    ("arrival: open", "load.arrival", "open arrivals need a rate"),
    ("{rate: 10, arrival: closed, max_in_flight: 4}".replace("{", "").replace("}", "")
     .replace(", ", "\n  "), "load.max_in_flight", "bounds open arrivals only"),
    ("arrival: sometimes", "load.arrival", "'open' or 'closed'"),
])
def test_a_bad_arrival_mix_names_file_line_and_key(tmp_path: Path, load: str, key: str,
                                                   needle: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("LOAD", load))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if key.rsplit(".", 1)[1] + ":" in text)
    assert len(err) == 1 and err[0].startswith(f"{path}:{line}: {key}: "), err
    assert needle in err[0]
