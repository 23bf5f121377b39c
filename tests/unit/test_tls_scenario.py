"""TLS in scenario files (issue 22): `tls: true` on a service, `load.tls`, and the `tls`
phase fault; what loads, and what is refused before anything starts with file:line:key
(exit 2): a fault on a service that serves no TLS, a certificate for a service the harness
does not run, a gateway profile that cannot serve TLS (the loopback stack's refusal is in
tests/integration/test_tls_services.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario import gateways
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import TlsFault
from chaos.scenario.tls_checks import serving, tls_proxies, uses_tls
from chaos.witness.plan import plan
from tests.fixtures.scenarios import line_of, write_scenario

BASE = """\
name: tls-demo
description: The gateway dials its upstream over TLS, through the proxy.
services:
  backend: {build: docker/backend, port: 8080, tls: true}
  gateway:
    build: docker/gateway
    port: 8000
    env: {UPSTREAM_URL: "${proxy.backend}"}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  requests:
    - {name: item, method: GET, path: /api/items/1}
phases:
  - {name: baseline, duration: 2s}
  - name: fault
    duration: 2s
    faults:
      - {service: backend, tls: expired, for: 1s}
assertions:
  - {phase: baseline, resets: 0, tls_handshake_failed: 0}
"""


def _write(tmp_path: Path, text: str) -> Path:
    return write_scenario(tmp_path, "tls.yaml", text)


def test_a_tls_scenario_loads_with_its_fault(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE))
    fault = scenario.phases[1].faults[0]
    assert isinstance(fault, TlsFault) and fault.tls == "expired" and fault.max_version is None
    assert fault.describe() == "backend serves an expired certificate for 1s"
    assert uses_tls(scenario) and serving(scenario) == {"backend"}
    assert tls_proxies(scenario) == ["backend"]
    # a tap on that proxy would read ciphertext: the witness says so and takes none
    chosen = plan(scenario, None, "the embedded server")
    assert chosen.kind == "none" and "carries TLS" in chosen.note


def test_load_tls_makes_the_target_serve_tls(tmp_path: Path) -> None:
    text = BASE.replace("  target: gateway\n", "  target: gateway\n  tls: true\n")
    scenario = load_scenario(_write(tmp_path, text))
    assert serving(scenario) == {"backend", "gateway"}


@pytest.mark.parametrize(("old", "new", "key", "says"), [
    ("{service: backend, tls: expired, for: 1s}", "{service: gateway, tls: expired, for: 1s}",
     "phases[1].faults[0].service", "known: backend"),
    ("{service: backend, tls: expired, for: 1s}", "{service: backend, tls: revoked, for: 1s}",
     "phases[1].faults[0].tls", "expired"),
    ("{service: backend, tls: expired, for: 1s}",
     "{service: backend, tls: valid, max_version: SSLv3}",
     "phases[1].faults[0].max_version", "TLSv1"),
    ("backend: {build: docker/backend, port: 8080, tls: true}",
     "backend: {url: 'http://127.0.0.1:8080', tls: true}", "services.backend.tls", "url:"),
])
def test_what_cannot_run_is_refused_with_its_key_and_line(tmp_path: Path, old: str, new: str,
                                                          key: str, says: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    with pytest.raises(ScenarioError, match=says) as caught:
        load_scenario(_write(tmp_path, text))
    assert caught.value.key == key and caught.value.exit_code == 2
    assert caught.value.line == line_of(text, new.split(",")[0])


PROFILE = """name: plain
port: 8000
health: /healthz
upstream_env: UPSTREAM_URL
profiles: {stock: s}
version: [plain, -v]
"""


def test_a_gateway_profile_without_tls_refuses_the_scenario(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "gateways" / "plain"
    folder.mkdir(parents=True)
    (folder / "gateway.yaml").write_text(PROFILE)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(gateways, "gateways_dir", lambda: tmp_path / "gateways")
    with pytest.raises(ScenarioError, match="plain does not serve TLS") as caught:
        load_scenario(_write(tmp_path, BASE), gateway="plain:stock")
    assert caught.value.exit_code == 2
    (folder / "gateway.yaml").write_text(PROFILE + "tls: true\n")
    assert uses_tls(load_scenario(_write(tmp_path, BASE), gateway="plain:stock"))
