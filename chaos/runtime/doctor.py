"""`chaos doctor`: leftovers of runs whose process is gone, and their removal."""

from __future__ import annotations

import sys

from chaos.errors import EnvironmentProblem
from chaos.runtime import labels as L
from chaos.runtime.bootstrap import connect
from chaos.runtime.environment import sweep as sweep_labels


def leftovers() -> dict[str, list[str]]:
    """Run id -> names of its containers and networks, for runs whose owner is dead."""
    client = connect()
    found: dict[str, list[str]] = {}
    filters = {"label": [L.RUN]}
    for container in client.containers.list(all=True, filters=filters):
        labels = container.labels
        if not L.owner_alive(labels):
            found.setdefault(labels[L.RUN], []).append(f"container {container.name}")
    for network in client.networks.list(filters=filters):
        labels = network.attrs.get("Labels") or {}
        if not L.owner_alive(labels):
            found.setdefault(labels[L.RUN], []).append(f"network {network.name}")
    return found


def doctor(sweep: bool = False) -> int:
    try:
        found = leftovers()
    except EnvironmentProblem as exc:
        print(f"chaos doctor: {exc}", file=sys.stderr)
        return exc.exit_code
    if not found:
        print("no leftovers of dead runs")
        return 0
    for run_id, names in sorted(found.items()):
        print(f"run {run_id}: " + ", ".join(sorted(names)))
    if not sweep:
        print("run `chaos doctor --sweep` to remove them")
        return 1
    client = connect()
    problems = [p for run_id in found for p in sweep_labels(client, {L.RUN: run_id})]
    for problem in problems:
        print(f"could not remove {problem}", file=sys.stderr)
    print(f"removed leftovers of {len(found)} run(s)")
    return 3 if problems else 0
