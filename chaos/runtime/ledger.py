"""The cleanup ledger: what a run is about to create, written down before it exists.

Labels find Docker resources, but not a Locust process group or a toxic inside a
proxy; and a harness killed with SIGKILL between "create" and "label" would leave
something nobody knows about. So every resource is appended to
``.chaos/runs/<run_id>.ndjson`` (fsynced) *before* it is created, marked removed
when it is gone, and teardown walks the outstanding entries in reverse. A ledger
whose owner process is dead is what `chaos doctor` reads to sweep up after a
SIGKILL. A ledger is deleted once nothing in it is outstanding.

Removal never trusts a name alone: a container or network is removed only when
it carries this run's label, and a process is signalled only when its environment
carries this run's marker (``CHAOS_RUN_ID``), so resources with similar names or
recycled pids are never touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.runtime import labels as L
from chaos.runtime.paths import state_dir

if TYPE_CHECKING:
    import docker

RUN_MARKER = "CHAOS_RUN_ID"
OWNER_MARKER = "CHAOS_OWNER_PID"
KINDS = ("network", "container", "proxy", "toxic", "process", "image")


def ledger_dir() -> Path:
    path = state_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Entry:
    kind: str
    name: str
    info: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


Remover = Callable[[Entry], None]


class Ledger:
    """Append-only record of one run's resources (one JSON object per line)."""

    def __init__(self, run_id: str, scenario: str, folder: Path | None = None) -> None:
        self.run_id = run_id
        self.path = (folder or ledger_dir()) / f"{run_id}.ndjson"
        self._append({"op": "run", "run_id": run_id, "scenario": scenario,
                      "pid": os.getpid(), "pid_start": L.process_start(os.getpid()),
                      "host": socket.gethostname(),
                      "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def intend(self, kind: str, name: str, **info: Any) -> Entry:
        """Record a resource about to be created (call before creating it)."""
        self._append({"op": "create", "kind": kind, "name": name, **info})
        return Entry(kind, name, info)

    def update(self, kind: str, name: str, **info: Any) -> None:
        """Add what is only known after creation (a pid, a generated id)."""
        self._append({"op": "update", "kind": kind, "name": name, **info})

    def removed(self, kind: str, name: str) -> None:
        self._append({"op": "removed", "kind": kind, "name": name})

    def outstanding(self) -> list[Entry]:
        return read_ledger(self.path).entries

    def unwind(self, removers: Mapping[str, Remover]) -> list[str]:
        return unwind(self, removers)

    def close(self) -> bool:
        """Delete the ledger when nothing is outstanding; True when it was deleted."""
        if self.outstanding():
            return False
        self.path.unlink(missing_ok=True)
        return True


@dataclass
class LedgerFile:
    """A ledger as read back from disk: its owner and the entries still outstanding."""

    path: Path
    run_id: str
    header: dict[str, Any]
    entries: list[Entry]

    def owner_alive(self) -> bool:
        return L.owner_alive({L.PID: str(self.header.get("pid", 0)),
                              L.HOST: str(self.header.get("host", "")),
                              L.PID_START: str(self.header.get("pid_start") or "")})

    def removed(self, kind: str, name: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"op": "removed", "kind": kind, "name": name}) + "\n")

    def close(self) -> bool:
        if read_ledger(self.path).entries:
            return False
        self.path.unlink(missing_ok=True)
        return True


def read_ledger(path: Path) -> LedgerFile:
    header: dict[str, Any] = {}
    live: dict[tuple[str, str], Entry] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a SIGKILL mid-write
        op = record.pop("op", None)
        if op == "run":
            header = record
            continue
        key = (str(record.pop("kind", "")), str(record.pop("name", "")))
        if op == "create":
            live.pop(key, None)  # re-created (a toxic redrawn): latest wins, order by creation
            live[key] = Entry(key[0], key[1], record)
        elif op == "update" and key in live:
            live[key].info.update(record)
        elif op == "removed":
            live.pop(key, None)
    run_id = str(header.get("run_id") or path.stem)
    return LedgerFile(path, run_id, header, list(live.values()))


def ledgers(folder: Path | None = None) -> list[LedgerFile]:
    base = folder or ledger_dir()
    return [read_ledger(p) for p in sorted(base.glob("*.ndjson"))]




def unwind(ledger: Ledger | LedgerFile, removers: Mapping[str, Remover]) -> list[str]:
    """Remove outstanding entries newest first; returns what could not be removed."""
    entries = read_ledger(ledger.path).entries
    problems: list[str] = []
    for entry in reversed(entries):
        remover = removers.get(entry.kind)
        if remover is None:
            continue
        try:
            remover(entry)
        except Exception as exc:  # noqa: BLE001 - keep going: the rest must still be removed
            problems.append(f"{entry}: {exc}")
            continue
        ledger.removed(entry.kind, entry.name)
    return problems


# -- removers ---------------------------------------------------------------------------
def docker_removers(client: docker.DockerClient, run_id: str) -> dict[str, Remover]:
    """Containers, networks and images by name, but only when they carry this run's label.

    One that vanishes meanwhile (another teardown, a removal already in progress) is gone.
    """
    from docker.errors import NotFound

    from chaos.runtime.cleanup import Found, remove

    def ours(kind: str, key: str, inspect: Callable[[str], dict[str, Any]]) -> Found | None:
        try:
            attrs = inspect(key)
        except NotFound:
            return None
        labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(L.RUN) != run_id:
            return None  # same name, not ours: never touch it
        return Found(kind, str(attrs.get("Id") or key), key, labels)

    def remover(kind: str, inspect: Callable[[str], dict[str, Any]]) -> Remover:
        def remove_entry(entry: Entry) -> None:
            found = ours(kind, entry.name, inspect)
            if found is not None and (problem := remove(client, found)) is not None:
                raise RuntimeError(problem)

        return remove_entry

    api = client.api
    return {"container": remover("container", api.inspect_container),
            "network": remover("network", api.inspect_network),
            "image": remover("image", api.inspect_image)}


def run_processes(run_id: str) -> list[int]:
    """Pids of live processes whose environment carries this run's marker (Linux /proc)."""
    return [pid for pid, env in _marked_processes() if env.get(RUN_MARKER) == run_id]


def orphan_runs() -> dict[str, list[int]]:
    """Run id -> pids of marked processes whose owning harness is gone."""
    found: dict[str, list[int]] = {}
    for pid, env in _marked_processes():
        owner = {L.PID: env.get(OWNER_MARKER, "0"), L.HOST: socket.gethostname(),
                 L.PID_START: env.get(OWNER_MARKER + "_START", "")}
        if not L.owner_alive(owner):
            found.setdefault(env[RUN_MARKER], []).append(pid)
    return found


def _marked_processes() -> Iterator[tuple[int, dict[str, str]]]:
    proc = Path("/proc")
    if not proc.is_dir():
        return
    me = os.getpid()
    for item in proc.iterdir():
        if not item.name.isdigit() or int(item.name) == me:
            continue
        try:
            raw = (item / "environ").read_bytes()
        except OSError:
            continue
        if RUN_MARKER.encode() not in raw:
            continue
        env = dict(part.split("=", 1) for part in raw.decode(errors="replace").split("\0")
                   if "=" in part)
        if RUN_MARKER in env:
            yield int(item.name), env


def kill_run_processes(run_id: str, grace: float = 5.0) -> list[int]:
    """SIGTERM then SIGKILL every process (and process group it leads) marked with run_id."""
    pids = run_processes(run_id)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            _signal(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline and run_processes(run_id):
            time.sleep(0.1)
        _reap(pids)
        if not run_processes(run_id):
            break
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)  # a group leader we marked: its whole group is ours
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pids: list[int]) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def process_remover(run_id: str) -> dict[str, Remover]:
    def process(entry: Entry) -> None:
        kill_run_processes(run_id)

    return {"process": process}


def process_env(run_id: str) -> dict[str, str]:
    """Markers put into the environment of every process a run starts."""
    return {RUN_MARKER: run_id, OWNER_MARKER: str(os.getpid()),
            OWNER_MARKER + "_START": L.process_start(os.getpid()) or ""}
