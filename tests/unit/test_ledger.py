"""The cleanup ledger and `chaos doctor` without Docker: records, reverse unwind, orphans."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos import doctor
from chaos.runtime import labels
from chaos.runtime import ledger as ledger_mod
from chaos.runtime.ledger import Ledger, read_ledger


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_entries_are_on_disk_before_creation_and_unwound_newest_first() -> None:
    ledger = Ledger("run-1", "demo")
    ledger.intend("network", "chaos-run-1")
    ledger.intend("container", "chaos-run-1-backend", service="backend")
    ledger.intend("toxic", "backend/reset", proxy="backend", toxic="reset")
    assert [e.kind for e in read_ledger(ledger.path).entries] == ["network", "container", "toxic"]
    order: list[str] = []
    problems = ledger.unwind({k: (lambda e: order.append(e.name)) for k in ("network", "container")}
                             | {"toxic": lambda e: (_ for _ in ()).throw(RuntimeError("api down"))})
    assert order == ["chaos-run-1-backend", "chaos-run-1"]
    assert problems == ["toxic backend/reset: api down"]
    assert not ledger.close()  # the toxic is still outstanding
    ledger.removed("toxic", "backend/reset")
    assert ledger.close() and not ledger.path.exists()


def test_a_line_cut_by_sigkill_is_ignored(state: Path) -> None:
    ledger = Ledger("run-2", "demo")
    ledger.intend("container", "c1")
    with open(ledger.path, "a") as handle:
        handle.write('{"op": "create", "kind": "conta')
    assert [e.name for e in read_ledger(ledger.path).entries] == ["c1"]


def test_owner_liveness_uses_pid_and_start_time() -> None:
    me = {labels.PID: str(os.getpid()), labels.HOST: os.uname().nodename}
    assert labels.owner_alive(me)
    assert not labels.owner_alive({**me, labels.PID: str(dead_pid())})
    started = labels.process_start(os.getpid())
    if started is not None:  # Linux: a recycled pid is told apart by its start time
        assert labels.owner_alive({**me, labels.PID_START: started})
        assert not labels.owner_alive({**me, labels.PID_START: str(int(started) + 1)})
    assert labels.owner_alive({**me, labels.HOST: "another-machine", labels.PID: "1"})


def test_doctor_finds_and_sweeps_an_orphaned_process_and_a_stale_ledger(
        state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc")
    ledger = Ledger("run-3", "demo")
    ledger.intend("process", "locust")
    env = dict(os.environ, **ledger_mod.process_env("run-3"))
    env[ledger_mod.OWNER_MARKER] = str(dead_pid())
    env[ledger_mod.OWNER_MARKER + "_START"] = ""
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env,
                              start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 env=dict(os.environ, CHAOS_RUN_ID_X="run-3"))
    try:
        # the ledger's owner is this process: alive, so doctor must leave that ledger alone
        found = doctor.leftovers(None)
        assert found["run-3"].processes == [orphan.pid]
        assert found["run-3"].ledger is None
        # once its owner is dead, the ledger is a leftover as well
        lines = ledger.path.read_text().splitlines()
        lines[0] = lines[0].replace(f'"pid": {os.getpid()}', f'"pid": {dead_pid()}')
        ledger.path.write_text("\n".join(lines) + "\n")
        monkeypatch.setattr(doctor, "connect", lambda: (_ for _ in ()).throw(
            doctor.EnvironmentProblem("no docker here")))
        assert doctor.doctor(sweep=False) == 1
        assert "run run-3: process" in capsys.readouterr().out
        doctor.doctor(sweep=True)
        deadline = time.monotonic() + 10
        while orphan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert orphan.poll() is not None, "the orphaned process group was not killed"
        assert bystander.poll() is None, "a process without the run marker was touched"
        assert not ledger.path.exists()
    finally:
        for proc in (orphan, bystander):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_proxy_remover_decides_gone_by_status_not_by_text(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A 404 (with any text) means already gone; a 500 quoting 'HTTP 404' is a failure."""
    from chaos.errors import ProxyError
    from chaos.proxy import client as client_mod
    from chaos.proxy import external
    from chaos.proxy.cleanup import proxy_remover

    answers = [ProxyError("toxiproxy: delete failed: proxy not found", 404),
               ProxyError("toxiproxy: delete failed: HTTP 500: upstream said HTTP 404", 500)]

    def delete(self: object, name: str) -> None:
        raise answers.pop(0)

    monkeypatch.setattr(client_mod.ToxiproxyClient, "delete_proxy", delete)
    ledger = Ledger("r7", "ext", folder=tmp_path)
    ledger.intend("proxy", external.proxy_name("r7", "b"), api="http://127.0.0.1:1", external=True)
    ledger.intend("proxy", external.proxy_name("r7", "a"), api="http://127.0.0.1:1", external=True)
    problems = ledger.unwind(proxy_remover("r7"))
    assert len(problems) == 1 and "HTTP 500" in problems[0], problems
    assert not answers
