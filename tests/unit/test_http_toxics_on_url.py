"""HTTP toxics on a server at TOXIPROXY_URL: the project's embedded server run standalone
(``chaos toxiproxy serve``) applies them, so the scenario is not refused there; a real
Toxiproxy server (its /version says so) or one that does not answer is refused with exit 2
naming the key and the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaos.errors import ScenarioError
from chaos.proxy.provider import ProviderChoice, refuse_http_toxics
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import Scenario
from tests.fixtures.loopback import LOOPBACK, free_port, http_server, text_handler
from tests.fixtures.scenarios import write_scenario

_SCRIPT = Path(sys.executable).with_name("chaos")
CHAOS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "chaos.cli"]
ABORT = "{proxy: backend, toxic: {type: http_abort, attributes: {status: 503, first: 20}}}"
KEY = "phases[1].faults[0].toxic.type"


@pytest.fixture(scope="module")
def standalone() -> Iterator[str]:
    """``chaos toxiproxy serve`` on a free loopback port, as a user would run it."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = subprocess.Popen([*CHAOS, "toxiproxy", "serve", "--host", LOOPBACK,
                               "--port", str(port)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                requests.get(f"{url}/version", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            pytest.fail("chaos toxiproxy serve did not answer /version")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _real_toxiproxy(version: str) -> Any:
    """A server whose /version is a real Toxiproxy's (every GET gets that body)."""
    base = text_handler(json.dumps({"version": version}).encode(), 200, "application/json")

    class Handler(base):  # type: ignore[valid-type,misc]
        asked: list[str] = []

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            Handler.asked.append(self.path)
            super().do_GET()

    return Handler


def _scenario(tmp_path: Path, fault: str = ABORT) -> Scenario:
    return load_scenario(write_scenario(tmp_path, fault=fault))


def _url(url: str) -> ProviderChoice:
    return ProviderChoice(f"TOXIPROXY_URL {url}", None, None, kind="url", url=url)


def test_the_embedded_server_run_standalone_is_not_refused(
        tmp_path: Path, standalone: str) -> None:
    refuse_http_toxics(_scenario(tmp_path), _url(standalone))
    refuse_http_toxics(_scenario(tmp_path), _url(standalone.removeprefix("http://")))
    # and it does apply them: the toxic is accepted on a proxy there
    made = requests.post(f"{standalone}/proxies", json={
        "name": "p", "listen": f"{LOOPBACK}:0", "upstream": f"{LOOPBACK}:9"}, timeout=5)
    assert made.status_code == 201, made.text
    toxic = requests.post(f"{standalone}/proxies/p/toxics", json={
        "type": "http_abort", "attributes": {"status": 503}}, timeout=5)
    assert toxic.status_code == 200, toxic.text


def test_a_real_toxiproxy_at_the_url_is_refused_naming_the_key_and_the_reason(
        tmp_path: Path) -> None:
    handler = _real_toxiproxy("2.12.0")
    for address in http_server(handler):
        url = f"http://{address}"
        with pytest.raises(ScenarioError) as caught:
            refuse_http_toxics(_scenario(tmp_path), _url(url))
    assert caught.value.exit_code == 2
    text = caught.value.render()
    assert KEY in text and "http_abort" in text and "real Toxiproxy server" in text, text
    assert "GET /version is '2.12.0'" in text and "'-chaos'" in text, text
    assert handler.asked == ["/version"]  # asked, nothing made there


def test_a_url_that_does_not_answer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        refuse_http_toxics(_scenario(tmp_path), _url(f"http://{LOOPBACK}:{free_port()}"))
    text = caught.value.render()
    assert caught.value.exit_code == 2 and KEY in text and "GET /version failed" in text, text


def test_no_http_toxic_no_question_asked(tmp_path: Path) -> None:
    asked: list[str] = []
    plain = "{proxy: backend, toxic: {type: latency, attributes: {latency: 100}}}"

    def probe(url: str) -> str:
        asked.append(url)
        return "2.12.0"

    refuse_http_toxics(_scenario(tmp_path, plain), _url("http://127.0.0.1:9"), probe=probe)
    assert asked == []
