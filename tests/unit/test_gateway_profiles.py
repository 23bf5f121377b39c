"""Gateway profiles (docker/gateways/<name>/gateway.yaml) and `gateway: NAME:PROFILE`
(chaos/scenario/gateways.py): loading errors name file:line:key, a profile rewrites the
load target's service, --gateway wins over the file, unknown names exit 2 with the list."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.errors import ScenarioError
from chaos.observe.events import ServiceReady
from chaos.observe.lines import describe
from chaos.rerun import run_command
from chaos.scenario.gateways import load_profile
from chaos.scenario.loader import load_scenario
from chaos.stack.gateway_version import gateway_label, read_version
from tests.fixtures.gateway_profiles import write_profile
from tests.fixtures.scenarios import MINIMAL, write_scenario

SWITCHED = MINIMAL.replace(
    'env: {UPSTREAM_URL: "${proxy.backend}"}',
    'memory: 256m, env: {UPSTREAM_URL: "${proxy.backend}", GATEWAY_RETRIES: "off"}')
PROBE = "probes:\n  breaker: {service: gateway, interval: 100ms}\n"

GOOD = """\
name: demo
port: 8000
health: /healthz
upstream_env: UPSTREAM_URL
profile_env: GATEWAY_PROFILE
profiles: {stock: "defaults"}
version: ["demo", "-v"]
"""


@pytest.mark.parametrize(("text", "line", "key", "words"), [
    (GOOD.replace("port: 8000", "port: eighty"), 2, "port", "valid integer"),
    (GOOD + "metrcs: /metrics\n", 8, "metrcs", "unknown key"),
    (GOOD.replace("name: demo", "name: other"), 1, "name", "folder's name"),
    (GOOD.replace('version: ["demo", "-v"]', "version: []"), 7, "version", "at least 1"),
    (GOOD.replace("health: /healthz", "health: healthz"), 3, "health", "pattern"),
    (GOOD + "breaker: {metric: x, open_valu: 1}\n", 8, "breaker.open_valu", "unknown key"),
])
def test_a_bad_profile_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                               words: str) -> None:
    file = write_profile(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_profile(file)
    assert caught.value.render().startswith(f"{file}:{line}: {key}: "), caught.value.render()
    assert words in caught.value.message


def test_a_profile_without_a_dockerfile_is_refused(tmp_path: Path) -> None:
    file = write_profile(tmp_path, GOOD)
    (file.parent / "Dockerfile").unlink()
    with pytest.raises(ScenarioError, match="has no Dockerfile"):
        load_profile(file)


def test_a_profile_replaces_build_port_health_env_and_the_breaker_probe(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, text=SWITCHED + PROBE)
    scenario = load_scenario(path, gateway="nginx:hardened")
    gateway = scenario.services["gateway"]
    assert (gateway.build, gateway.port, gateway.health) == ("docker/gateways/nginx", 8000,
                                                             "/healthz")
    assert gateway.env == {"UPSTREAM_URL": "${proxy.backend}", "GATEWAY_PROFILE": "hardened"}
    assert gateway.memory == "256m"  # what the profile does not say is kept
    assert scenario.probes.breaker is None  # nginx has no breaker metric: the witness judges
    assert scenario.gateway == "nginx:hardened"


def test_the_reference_profile_keeps_a_breaker_probe_at_its_metrics(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, text=SWITCHED + PROBE)
    scenario = load_scenario(path, gateway="reference:default")
    gateway = scenario.services["gateway"]
    assert gateway.build == "docker/gateway" and gateway.env == {"UPSTREAM_URL": "${proxy.backend}"}
    breaker = scenario.probes.breaker
    assert breaker is not None
    assert (breaker.path, breaker.metric, breaker.open_value, breaker.interval) == (
        "/metrics", "gateway_breaker_state", 1.0, 0.1)


def test_gateway_on_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, text=SWITCHED + "gateway: nginx:stock\n")
    assert load_scenario(path).services["gateway"].env["GATEWAY_PROFILE"] == "stock"
    scenario = load_scenario(path, gateway="nginx:hardened")
    assert scenario.services["gateway"].env["GATEWAY_PROFILE"] == "hardened"
    assert scenario.gateway == "nginx:hardened"
    assert "--gateway nginx:hardened" in run_command(path, gateway="nginx:hardened")


def test_unknown_gateway_or_profile_exits_2_listing_what_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path)
    assert main(["validate", str(path), "--gateway", "nope:stock"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--gateway: no gateway named 'nope'") and "nginx:hardened" in err
    assert main(["validate", str(path), "--gateway", "nginx:tuned"]) == 2
    err = capsys.readouterr().err
    assert "gateway nginx has no profile 'tuned'" in err and "reference:default" in err
    in_file = write_scenario(tmp_path, "in-file.yaml", text=MINIMAL + "gateway: nginx:tuned\n")
    assert main(["validate", str(in_file)]) == 2
    assert capsys.readouterr().err.startswith(f"{in_file}:18: gateway: gateway nginx has no")


def test_a_load_target_without_upstream_url_exits_2_saying_what_is_needed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL.replace('env: {UPSTREAM_URL: "${proxy.backend}"}', 'env: {TARGET: x}')
    path = write_scenario(tmp_path, text=text)
    assert main(["run", str(path), "--gateway", "nginx:stock"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--gateway: ") and "env UPSTREAM_URL" in err and "load.target" in err


def test_chaos_gateways_lists_name_profile_and_description(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateways"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("nginx:stock ") and "defaults" in line for line in lines)
    assert any(line.startswith("reference:default ") for line in lines)
    assert not any("INVALID" in line for line in lines), lines


class _Container:
    """docker-py's Container.exec_run, as the version reader uses it."""

    def __init__(self, code: int = 0, output: bytes = b"", hang: float = 0.0,
                 error: Exception | None = None) -> None:
        self.code, self.output, self.hang, self.error = code, output, hang, error
        self.argv: list[str] = []

    def exec_run(self, argv: list[str], stdout: bool, stderr: bool) -> tuple[int, bytes]:
        self.argv = argv
        if self.error is not None:
            raise self.error
        time.sleep(self.hang)
        return self.code, self.output


def test_the_version_is_the_first_line_and_a_failure_only_a_warning() -> None:
    box = _Container(output=b"\nnginx version: nginx/1.22.1\nbuilt with OpenSSL\n")
    assert read_version(box, ["nginx", "-v"]) == ("nginx version: nginx/1.22.1", "")
    assert box.argv == ["nginx", "-v"]
    assert read_version(_Container(code=127, output=b"sh: nginx: not found"), ["nginx"]) == (
        None, "`nginx` exited 127: sh: nginx: not found")
    started = time.monotonic()
    version, warning = read_version(_Container(hang=5.0), ["slow"], timeout=0.2)
    assert version is None and "did not answer within 0.2s" in warning
    assert time.monotonic() - started < 2
    version, warning = read_version(_Container(error=RuntimeError("409 conflict")), ["x"])
    assert version is None and "409 conflict" in warning
    assert gateway_label("nginx:hardened", "nginx version: nginx/1.22.1") == (
        "nginx nginx version: nginx/1.22.1 (hardened)")
    assert gateway_label("haproxy:stock", None) == "haproxy unknown (stock)"


def test_the_console_shows_the_version_or_the_warning() -> None:
    ready = ServiceReady(service="gateway", image="img", seconds=1.0, version="HAProxy 2.6.12")
    assert describe(ready).endswith("ready (img, 1.0s): HAProxy 2.6.12")
    late = ServiceReady(service="gateway", image="img", seconds=1.0, warning="`x` exited 1")
    assert describe(late).endswith("; warning: its version is unknown: `x` exited 1")
