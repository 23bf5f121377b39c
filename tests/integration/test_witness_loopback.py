"""The upstream witness in a real run on the loopback stack: the embedded proxy's tap sees
the gateway's attempts, the poller writes them to upstream.ndjson, result.json says which
witness it was. Needs the embedded server's tap (GET /proxies/{name}/attempts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.engine import run_scenario
from chaos.scenario.loader import load_scenario
from chaos.stack.loopback import LoopbackStack
from chaos.witness.records import read_attempts
from tests.fixtures.scenarios import write_scenario


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gateway-chaos-test/docker.sock")
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.delenv("CHAOS_PROXY_TAP", raising=False)


def test_a_run_writes_the_attempts_the_tap_saw(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)  # gateway -> proxy backend -> backend; 2 users for 2 s
    result = run_scenario(load_scenario(path), file=str(path), report_root=tmp_path / "reports",
                          quiet=True, stack_factory=LoopbackStack)
    run_dir = Path(result.report_dir)
    witness = json.loads((run_dir / "result.json").read_text())["witness"]
    assert witness["kind"] == "tap", (
        f"the embedded proxy's tap did not serve the run (is GET /proxies/backend/attempts "
        f"there?): result.json witness = {witness}")
    assert witness["sources"] == ["tap:backend"]
    attempts = list(read_attempts(run_dir / "upstream.ndjson"))
    assert attempts and {a.source for a in attempts} == {"tap:backend"}
    assert witness["attempts"] == len(attempts) and witness["dropped"] == 0
    assert witness["connections"]["http"] >= 1
    assert all(a.method == "GET" and a.path == "/" for a in attempts)
    # each attempt carried a client request's id: the two sides join
    client = {json.loads(line).get("rid") for line in
              (run_dir / "requests.ndjson").read_text().splitlines() if line.strip()}
    assert {a.rid for a in attempts} <= client
    assert sum(a.rid is not None for a in attempts) >= 0.9 * len(attempts)


def test_a_run_with_the_journal_as_witness(tmp_path: Path) -> None:
    """use: journal reads the reference backend's /journal instead of the tap."""
    path = write_scenario(tmp_path, extra="witness:\n  use: journal\n"
                          "  journal: {service: backend, path: /journal}\n")
    result = run_scenario(load_scenario(path), file=str(path), report_root=tmp_path / "reports",
                          quiet=True, stack_factory=LoopbackStack)
    run_dir = Path(result.report_dir)
    witness = json.loads((run_dir / "result.json").read_text())["witness"]
    assert (witness["kind"], witness["sources"]) == ("journal", ["journal:backend"]), witness
    assert witness["note"] == "witness.use is journal: the witness is the backend journal"
    attempts = list(read_attempts(run_dir / "upstream.ndjson"))
    assert attempts and witness["attempts"] == len(attempts)
    assert {a.source for a in attempts} == {"journal:backend"}
    assert all(a.ended == "complete" and a.status is not None for a in attempts)
    assert witness.get("matched", 0) >= 0.9 * len(attempts)  # the join found their clients


def test_a_tap_that_stops_answering_is_a_dead_harness_part(tmp_path: Path) -> None:
    """Its attempts answer once (the tap is there), then 503: the run ends with exit 3
    naming the witness, not with a verdict on the gateway."""
    import http.server

    from tests.fixtures.loopback import LOOPBACK, serving

    class Failing(http.server.BaseHTTPRequestHandler):
        calls = 0

        def _answer(self) -> None:
            Failing.calls += 1
            ok = Failing.calls <= 2  # the plan's GET and the request-id POST
            body = b'{"tap": true, "attempts": [], "next": 0}' if ok else b"gone"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

        def log_message(self, *args: object) -> None:
            pass

    with serving(http.server.ThreadingHTTPServer((LOOPBACK, 0), Failing)) as address:
        class Stack(LoopbackStack):
            def proxy_api_url(self, proxy: str | None = None) -> str | None:
                return f"http://{address}/proxies/{proxy}"

        path = write_scenario(tmp_path)
        scenario = load_scenario(path, ["phases.0.duration=8s"])
        result = run_scenario(scenario, file=str(path), report_root=tmp_path / "reports",
                              quiet=True, stack_factory=Stack)
    assert (result.verdict, result.exit_code) == ("error", 3)
    assert result.environment_error is not None
    assert result.environment_error.part == (
        f"the upstream witness tap:backend (http://{address}/proxies/backend/attempts)")
    assert "stopped answering" in (result.error or "")
