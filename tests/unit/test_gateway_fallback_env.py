"""`fallback_env` in gateway profiles (chaos/scenario/gateways.py, issue 20): a profile names
the env var its entrypoint reads the comma-separated fallbacks from, and the scenario's
FALLBACK_URLS is copied there (left out when the scenario has none, or the profile reads
no fallbacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.gateways import _rewrite, load_profile
from chaos.scenario.loader import load_scenario
from tests.fixtures.gateway_profiles import write_profile
from tests.fixtures.scenarios import MINIMAL, write_scenario

TWO_PROVIDERS = MINIMAL.replace(
    '  backend: {build: docker/backend, port: 8080}\n',
    '  backend: {build: docker/backend, port: 8080}\n'
    '  backend2: {build: docker/backend, port: 8080}\n').replace(
    'env: {UPSTREAM_URL: "${proxy.backend}"}',
    'env: {UPSTREAM_URL: "${proxy.backend}", FALLBACK_URLS: "${proxy.backend2}"}').replace(
    '  backend: {upstream: "backend:8080"}\n',
    '  backend: {upstream: "backend:8080"}\n  backend2: {upstream: "backend2:8080"}\n')

PROFILE = """\
name: demo
port: 8000
health: /healthz
upstream_env: LB_PRIMARY
fallback_env: LB_FALLBACKS
profiles: {stock: "defaults"}
version: ["demo", "-v"]
"""


def test_the_reference_profile_keeps_the_scenarios_fallbacks(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, text=TWO_PROVIDERS)
    gateway = load_scenario(path, gateway="reference:default").services["gateway"]
    assert gateway.env == {"UPSTREAM_URL": "${proxy.backend}",
                           "FALLBACK_URLS": "${proxy.backend2}"}


def test_a_profile_without_fallback_env_drops_them(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, text=TWO_PROVIDERS)
    gateway = load_scenario(path, gateway="nginx:stock").services["gateway"]
    assert "FALLBACK_URLS" not in gateway.env
    assert gateway.env["UPSTREAM_URL"] == "${proxy.backend}"


def test_no_fallbacks_in_the_scenario_means_none_in_the_env(tmp_path: Path) -> None:
    gateway = load_scenario(write_scenario(tmp_path, text=MINIMAL),
                            gateway="reference:default").services["gateway"]
    assert gateway.env == {"UPSTREAM_URL": "${proxy.backend}"}


def test_fallbacks_go_to_the_variable_the_profile_names(tmp_path: Path) -> None:
    file = write_profile(tmp_path, PROFILE)
    profile = load_profile(file)
    data = {"load": {"target": "gateway"},
            "services": {"gateway": {"build": "x", "port": 1, "env": {
                "UPSTREAM_URL": "http://a:1", "FALLBACK_URLS": "http://b:1,http://c:1"}}}}
    _rewrite(data, profile, "stock", file)
    assert data["services"]["gateway"]["env"] == {"LB_PRIMARY": "http://a:1",
                                                  "LB_FALLBACKS": "http://b:1,http://c:1"}


def test_a_bad_fallback_env_names_file_line_and_key(tmp_path: Path) -> None:
    file = write_profile(tmp_path, PROFILE.replace("LB_FALLBACKS", "LB-FALLBACKS"))
    with pytest.raises(ScenarioError) as caught:
        load_profile(file)
    assert caught.value.render().startswith(f"{file}:5: fallback_env: "), caught.value.render()
