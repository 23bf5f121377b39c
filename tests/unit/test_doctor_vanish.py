"""`chaos doctor` and the label sweep when resources vanish under them (no Docker).

Another run tearing down on the same engine, or the daemon finishing a removal that a
SIGKILLed harness asked for, makes a container, network, image or volume disappear
between "list" and "inspect" or "remove". The fake below is docker-py's own
high-level client over a fake low-level API, so the real list/inspect/remove code runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.errors import APIError, NotFound

from chaos import doctor
from chaos.runtime import labels as L
from chaos.runtime.environment import sweep
from chaos.runtime.ledger import Ledger


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owner(run: str, pid: int) -> dict[str, str]:
    return {L.RUN: run, L.PID: str(pid), L.HOST: socket.gethostname()}


def conflict(message: str) -> APIError:
    response = requests.Response()
    response.status_code = 409
    return APIError(message, response, explanation=message)


class FakeAPI:
    """Docker's low-level API over dicts; `vanish` names objects that are gone after listing,
    `in_progress` names containers whose removal the daemon is already doing (409 once)."""

    def __init__(self) -> None:
        self.containers_: dict[str, dict[str, Any]] = {}
        self.networks_: dict[str, dict[str, Any]] = {}
        self.images_: dict[str, dict[str, Any]] = {}
        self.volumes_: dict[str, dict[str, Any]] = {}
        self.vanish: set[str] = set()
        self.in_progress: set[str] = set()

    @staticmethod
    def _match(labels: dict[str, str], filters: dict[str, Any] | None) -> bool:
        for wanted in (filters or {}).get("label", []):
            key, _, value = wanted.partition("=")
            if key not in labels or (value and labels[key] != value):
                return False
        return True

    def _listed(self, table: dict[str, dict[str, Any]], filters: dict[str, Any] | None
                ) -> list[dict[str, Any]]:
        listed = [dict(o) for o in table.values() if self._match(o["Labels"], filters)]
        for name in self.vanish:  # gone the moment the list was answered
            table.pop(name, None)
        return listed

    def _get(self, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        for name, item in table.items():
            if key in (name, item.get("Id")):
                return item
        raise NotFound(f"No such object: {key}")

    # containers
    def containers(self, all: bool = False, filters: dict[str, Any] | None = None,
                   **_: Any) -> list[dict[str, Any]]:
        return [{"Id": o["Id"], "Names": [f"/{o['Id']}"], "Labels": o["Labels"],
                 "State": "running"} for o in self._listed(self.containers_, filters)]

    def inspect_container(self, key: str) -> dict[str, Any]:
        item = self._get(self.containers_, key)
        return {"Id": item["Id"], "Name": f"/{item['Id']}", "Config": {"Labels": item["Labels"]},
                "State": {"Status": "running"}}

    def remove_container(self, key: str, **_: Any) -> None:
        item = self._get(self.containers_, key)
        if item["Id"] in self.in_progress:
            self.in_progress.discard(item["Id"])
            self.containers_.pop(item["Id"])  # the daemon finishes the removal it had begun
            raise conflict(f"removal of container {item['Id']} is already in progress")
        self.containers_.pop(item["Id"])

    # networks
    def networks(self, names: list[str] | None = None, filters: dict[str, Any] | None = None,
                 **_: Any) -> list[dict[str, Any]]:
        found = self._listed(self.networks_, filters)
        return [n for n in found if not names or n["Name"] in names]

    def inspect_network(self, key: str, **_: Any) -> dict[str, Any]:
        return self._get(self.networks_, key)

    def remove_network(self, key: str) -> None:
        self.networks_.pop(self._get(self.networks_, key)["Id"])

    # images
    def images(self, name: str | None = None, quiet: bool = False, all: bool = False,
               filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._listed(self.images_, filters)

    def inspect_image(self, key: str) -> dict[str, Any]:
        return self._get(self.images_, key)

    def remove_image(self, key: str, **_: Any) -> None:
        self.images_.pop(self._get(self.images_, key)["Id"])

    # volumes
    def volumes(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"Volumes": self._listed(self.volumes_, filters)}

    def inspect_volume(self, key: str) -> dict[str, Any]:
        return self._get(self.volumes_, key)

    def remove_volume(self, key: str, force: bool = False) -> None:
        self.volumes_.pop(self._get(self.volumes_, key)["Name"])

    def add(self, kind: str, name: str, labels: dict[str, str]) -> None:
        table = getattr(self, f"{kind}_")
        item = {"Id": name, "Name": name, "Labels": labels}
        if kind == "images":
            item["RepoTags"] = [f"gateway-chaos-run/{name}:x"]
        table[name] = item


def fake_client(api: FakeAPI) -> docker.DockerClient:
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api  # type: ignore[assignment]
    return client


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeAPI:
    """A dead run whose resources vanish under doctor, and a live run (this process)."""
    api = FakeAPI()
    dead, live = owner("dead-run", dead_pid()), owner("live-run", os.getpid())
    for name in ("dead-gone", "dead-busy", "dead-plain"):
        api.add("containers", name, dead)
    api.add("networks", "dead-net", dead)
    api.add("images", "dead-image", dead)
    api.add("volumes", "dead-volume", dead)
    api.add("containers", "live-c", live)
    api.add("networks", "live-net", live)
    api.add("images", "live-image", live)
    api.vanish = {"dead-gone", "dead-net", "dead-image", "dead-volume"}
    api.in_progress = {"dead-busy"}
    monkeypatch.setattr(doctor, "connect", lambda: fake_client(api))
    return api


def test_doctor_lists_a_dead_run_whose_resources_vanish_between_list_and_inspect(
        engine: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.doctor(sweep=False) == 1
    out = capsys.readouterr().out
    assert "run dead-run:" in out and "container dead-plain" in out
    assert "live-run" not in out


def test_doctor_sweep_counts_vanished_and_in_progress_removals_as_gone(
        engine: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger("dead-run", "demo")
    ledger.intend("network", "dead-net")
    ledger.intend("container", "dead-busy")
    lines = ledger.path.read_text().splitlines()
    lines[0] = lines[0].replace(f'"pid": {os.getpid()}', f'"pid": {dead_pid()}')
    ledger.path.write_text("\n".join(lines) + "\n")
    assert doctor.doctor(sweep=True) == 0
    captured = capsys.readouterr()
    assert "could not remove" not in captured.err, captured.err
    assert "removed leftovers of 1 run(s)" in captured.out
    assert set(engine.containers_) == {"live-c"}
    assert set(engine.networks_) == {"live-net"}
    assert set(engine.images_) == {"live-image"}
    assert not ledger.path.exists()


def test_teardown_sweep_tolerates_a_concurrent_removal(engine: FakeAPI) -> None:
    assert sweep(fake_client(engine), {L.RUN: "dead-run"}) == []
    assert set(engine.containers_) == {"live-c"}
    assert not engine.volumes_


def test_a_real_conflict_is_still_reported(engine: FakeAPI) -> None:
    def refuse(key: str, **_: Any) -> None:
        raise conflict("conflict: unable to remove: container is paused")

    engine.vanish = set()
    engine.remove_container = refuse  # type: ignore[method-assign]
    problems = sweep(fake_client(engine), {L.RUN: "dead-run"})
    assert any("container dead-plain" in p and "paused" in p for p in problems), problems
