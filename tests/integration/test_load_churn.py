"""load.requests_per_connection: the real locustfile against the reference backend (a local
process): each client ends its keep-alive connection after N requests, so the run's
records name about one connection per N requests of a user, whatever the server's own
keep-alive limits; without it the users keep theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.scenario.model import Load
from chaos.stack.processes import AppProcess, launch
from tests.fixtures.locust_runs import run_once
from tests.fixtures.loopback import free_port

BACKEND_APP = Path(__file__).resolve().parents[2] / "docker" / "backend" / "app.py"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    app = launch(BACKEND_APP, free_port(), tmp_path_factory.mktemp("churn") / "backend.log", {})
    assert app.healthy(), app.log()
    yield app
    app.stop()


def _connections(backend: AppProcess, folder: Path, per_connection: int | None) -> tuple[int, int]:
    load = Load(target="backend", users=2, spawn_rate=50, wait="10ms",
                requests_per_connection=per_connection,
                requests=[{"name": "item", "path": "/api/items/1"}])
    rows = run_once(load, backend.url, folder, 3.0, "churn")["rows"]
    ok = [r for r in rows if r["outcome"] == "ok" and r.get("conn")]
    return len(ok), len({tuple(r["conn"][:2]) for r in ok})


def test_clients_churn_their_connections_every_n_requests(backend: AppProcess,
                                                          tmp_path: Path) -> None:
    requests, connections = _connections(backend, tmp_path / "churn", 5)
    assert requests > 50, requests
    # 2 users: one new connection per 5 requests of each (a partial last one each)
    assert requests / 5 <= connections <= requests / 5 + 3, (requests, connections)


def test_without_it_each_user_keeps_its_connection(backend: AppProcess, tmp_path: Path) -> None:
    requests, connections = _connections(backend, tmp_path / "kept", None)
    assert requests > 50 and connections <= 2, (requests, connections)
