"""`chaos doctor`: leftovers of runs whose process is gone, and their removal.

Two sources, because either alone misses something: Docker labels (every
container, network and per-run image a run creates carries the run id and its
owner's pid),
and the cleanup ledgers in ``.chaos/runs/`` (which also know the Locust process
group, proxies created on a user's Toxiproxy server at TOXIPROXY_URL, and
anything whose creation was cut short). A run counts as dead when its
owner process no longer exists on this host; runs of live processes and of
other hosts are never touched, and nothing without this project's label or run
marker is ever removed. Resources that vanish while doctor looks (another run's
teardown on the same engine) count as gone, not as errors (chaos.runtime.cleanup).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaos.errors import EnvironmentProblem
from chaos.proxy.cleanup import proxy_remover
from chaos.runtime import cleanup
from chaos.runtime import labels as L
from chaos.runtime import ledger as ledgers_mod
from chaos.runtime.bootstrap import connect

if TYPE_CHECKING:
    import docker


@dataclass
class Leftovers:
    """What one dead run left behind."""

    run_id: str
    resources: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    ledger: ledgers_mod.LedgerFile | None = None

    def describe(self) -> str:
        items = sorted(set(self.resources)) + [f"process {pid}" for pid in sorted(self.processes)]
        if not items and self.ledger is not None:
            items = [f"stale ledger {self.ledger.path.name}"]
        return f"run {self.run_id}: " + ", ".join(items)


def _by_label(client: docker.DockerClient, found: dict[str, Leftovers]) -> None:
    """Labelled resources of dead owners; listing never inspects, so nothing can vanish under it."""
    for item in cleanup.listed(client, [L.RUN]):
        if not L.owner_alive(item.labels):
            run = found.setdefault(item.labels[L.RUN], Leftovers(item.labels[L.RUN]))
            run.resources.append(str(item))


def leftovers(client: docker.DockerClient | None = None) -> dict[str, Leftovers]:
    """Run id -> what it left, for runs whose owner is dead (client None: no Docker)."""
    found: dict[str, Leftovers] = {}
    if client is not None:
        _by_label(client, found)
    for ledger in ledgers_mod.ledgers():
        if ledger.owner_alive():
            continue
        run = found.setdefault(ledger.run_id, Leftovers(ledger.run_id))
        run.ledger = ledger
        run.resources += [f"proxy {e.name} on {e.info.get('api')}" for e in ledger.entries
                          if e.kind == "proxy" and e.info.get("external")]
    for run_id, pids in ledgers_mod.orphan_runs().items():
        found.setdefault(run_id, Leftovers(run_id)).processes.extend(pids)
    for run in found.values():
        if run.ledger is not None and not run.processes:
            run.processes.extend(ledgers_mod.run_processes(run.run_id))
    return found


def remove(run: Leftovers, client: docker.DockerClient | None) -> list[str]:
    """Ledger first (newest first), then the label sweep and the run's marked processes."""
    problems: list[str] = []
    removers: dict[str, ledgers_mod.Remover] = {
        # toxics go with their proxy; proxies inside the run's Toxiproxy container go with
        # it, those on a user's server (TOXIPROXY_URL) are deleted through its API
        "toxic": lambda entry: None,
        **proxy_remover(run.run_id),
        **ledgers_mod.process_remover(run.run_id),
    }
    if client is not None:
        removers.update(ledgers_mod.docker_removers(client, run.run_id))
    if run.ledger is not None:
        problems += ledgers_mod.unwind(run.ledger, removers)
    ledgers_mod.kill_run_processes(run.run_id)
    if client is not None:
        problems += cleanup.sweep(client, {L.RUN: run.run_id})
    if run.ledger is not None and not problems:
        if client is None and any(e.kind in ("container", "network", "image") for e in run.ledger.entries):
            return problems  # keep it: Docker resources could not be checked
        run.ledger.path.unlink(missing_ok=True)
    return problems


def doctor(sweep: bool = False) -> int:
    client: docker.DockerClient | None
    docker_problem: EnvironmentProblem | None = None
    try:
        client = connect()
    except EnvironmentProblem as exc:
        client, docker_problem = None, exc
        print(f"chaos doctor: {exc} (only processes and ledgers are checked)", file=sys.stderr)
    found = leftovers(client)
    if not found:
        print("no leftovers of dead runs")
        return docker_problem.exit_code if docker_problem else 0
    for run in sorted(found.values(), key=lambda r: r.run_id):
        print(run.describe())
    if not sweep:
        print("run `chaos doctor --sweep` to remove them")
        return 1
    problems = [p for run in found.values() for p in remove(run, client)]
    for problem in problems:
        print(f"could not remove {problem}", file=sys.stderr)
    print(f"removed leftovers of {len(found)} run(s)")
    return 3 if problems or docker_problem else 0
