"""Which witness a run gets, asked of a stand-in Toxiproxy API on 127.0.0.1: the tap when
its attempts endpoint answers, else the declared journal, else none, each with its note."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.loader import load_scenario
from chaos.witness.sources import start_witness
from tests.fixtures.loopback import http_server
from tests.fixtures.scenarios import write_scenario

JOURNAL = "witness:\n  journal: {service: backend}\n"


class Api:
    """The stand-in's answer to GET .../attempts ("tap", "off" or "404"), and what was POSTed."""

    def __init__(self) -> None:
        self.mode = "tap"
        self.posted: list[dict[str, Any]] = []


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if state.mode == "404":
                self._send(404, {"error": "404 page not found"})
            else:
                self._send(200, {"tap": state.mode == "tap", "attempts": [], "next": 0,
                                 "dropped": 0, "connections": {}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            state.posted.append(json.loads(self.rfile.read(length)))
            self._send(200, {})

        def log_message(self, *args: object) -> None:
            pass

    for address in http_server(Handler):
        yield state, f"http://{address}"


class Stack:
    """What start_witness asks of a stack."""

    def __init__(self, api: str, has_tap: bool | None) -> None:
        self.api, self.has_tap, self.provider = api, has_tap, "a stand-in"

    def proxy_api_url(self, proxy: str | None = None) -> str:
        return self.api if proxy is None else f"{self.api}/proxies/{proxy}"

    def service_url(self, name: str) -> str:
        return f"{self.api}/{name}"


def _start(tmp_path: Path, api: str, has_tap: bool | None, extra: str = "",
           sets: list[str] | None = None) -> tuple[Any, Any]:
    scenario = load_scenario(write_scenario(tmp_path, extra=extra), sets)
    plan, poller = start_witness(scenario, Stack(api, has_tap), tmp_path,  # type: ignore[arg-type]
                                 lambda service: False)
    if poller is not None:
        poller.stop()
    return plan, poller


def test_the_tap_when_it_answers_with_the_scenarios_request_id_names(
        api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    plan, poller = _start(tmp_path, url, True, sets=[
        "load.request_id.header=X-Trace", "load.request_id.body_field=metadata.chaos_id"])
    assert (plan.kind, plan.proxies, plan.note) == ("tap", ["backend"], "")
    assert [s.name for s in poller.sources] == ["tap:backend"]
    assert state.posted == [{"request_id_header": "X-Trace",
                             "request_id_field": "metadata.chaos_id"}]


def test_a_real_server_falls_back_to_the_journal(api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    state.mode = "404"
    plan, poller = _start(tmp_path, url, None, extra=JOURNAL)
    assert plan.kind == "journal"
    assert plan.note == "a real Toxiproxy server has no tap: the witness is the backend journal"
    assert [(s.name, s.url) for s in poller.sources] == [("journal:backend",
                                                         f"{url}/backend/journal")]
    assert state.posted == []


@pytest.mark.parametrize(("mode", "has_tap", "why"), [
    ("404", None, "a real Toxiproxy server has no tap"),
    ("tap", False, "a real Toxiproxy server has no tap"),  # the provider says so: not asked
    ("off", True, "the proxy's tap is switched off (--no-tap / CHAOS_PROXY_TAP=0)"),
])
def test_no_witness_says_why(api: tuple[Api, str], tmp_path: Path, mode: str,
                             has_tap: bool | None, why: str) -> None:
    state, url = api
    state.mode = mode
    plan, poller = _start(tmp_path, url, has_tap)
    assert (plan.kind, poller) == ("none", None)
    assert plan.note == (f"no witness: {why} and no journal is declared; retries and breakers "
                         "are read from probes only")


def test_use_tap_without_a_tap_is_bad_input(api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    state.mode = "404"
    with pytest.raises(ScenarioError) as caught:
        _start(tmp_path, url, None, extra="witness:\n  use: tap\n")
    assert caught.value.key == "witness.use" and "answers no tap" in caught.value.message


def test_off_asks_nothing(api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    plan, poller = _start(tmp_path, url, True, extra="witness:\n  use: off\n")
    assert (plan.kind, poller, state.posted) == ("none", None, [])
    assert plan.note.startswith("witness.use is off")
