"""The HAProxy gateway profile (docker/gateways/haproxy): what a user relies on without Docker.

The entrypoint refuses an unknown profile or a bad upstream with exit 2 before HAProxy
starts, and hands HAProxy the upstream as host:port; stock is the package's defaults plus
routing; hardened carries each mechanism the issue names, every line citing the section
of HAProxy's configuration manual that recommends it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from chaos.runtime.paths import project_root
from chaos.scenario.gateways import load_profile

FOLDER = project_root() / "docker" / "gateways" / "haproxy"
SECTION = re.compile(r'\b[345]\.\d+\b')  # a configuration.txt section such as 4.2 or 5.2


def _lines(profile: str) -> list[str]:
    return (FOLDER / f"{profile}.cfg").read_text(encoding="utf-8").splitlines()


def _directives(profile: str) -> list[str]:
    return [row.strip() for row in _lines(profile) if row.strip() and not row.strip().startswith("#")]


def test_the_profile_loads_with_both_configs_health_and_metrics() -> None:
    profile = load_profile(FOLDER / "gateway.yaml")
    assert (profile.name, profile.port, profile.health, profile.metrics) == (
        "haproxy", 8000, "/healthz", "/metrics")
    assert sorted(profile.profiles) == ["hardened", "stock"]
    assert profile.breaker is None  # HAProxy exports no breaker state: the witness judges


@pytest.mark.parametrize(("env", "words"), [
    ({"GATEWAY_PROFILE": "tuned", "UPSTREAM_URL": "http://b:1"}, "unknown GATEWAY_PROFILE 'tuned'"),
    ({"GATEWAY_PROFILE": "stock"}, "UPSTREAM_URL must be http://host:port"),
    ({"GATEWAY_PROFILE": "hardened", "UPSTREAM_URL": "b:1"}, "UPSTREAM_URL must be http://host:port"),
])
def test_the_entrypoint_refuses_bad_input_with_exit_2(env: dict[str, str], words: str) -> None:
    proc = subprocess.run(["sh", str(FOLDER / "entrypoint.sh")],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_the_entrypoint_runs_the_chosen_config_with_the_upstream_as_host_port(
        tmp_path: Path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text('#!/bin/sh\necho "args=$* addr=$UPSTREAM_ADDR"\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}{os.pathsep}/usr/bin:/bin", "GATEWAY_PROFILE": "hardened",
           "UPSTREAM_URL": "http://toxiproxy:20000/"}
    proc = subprocess.run(["sh", str(FOLDER / "entrypoint.sh")], env=env, capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert "args=-db -f /etc/gateway-haproxy/hardened.cfg addr=toxiproxy:20000" in proc.stdout


def test_both_configs_answer_health_and_metrics_themselves_and_log_to_stdout() -> None:
    for profile in ("stock", "hardened"):
        rows = _directives(profile)
        assert "log stdout format raw local0" in rows
        assert "bind :8000" in rows
        assert any(r.startswith("http-request return status 200") and "{ path /healthz }" in r
                   for r in rows), profile
        assert "http-request use-service prometheus-exporter if { path /metrics }" in rows
        assert 'server upstream "${UPSTREAM_ADDR}"' in " ".join(rows)


def test_stock_keeps_the_package_defaults_and_adds_no_resilience() -> None:
    rows = _directives("stock")
    for kept in ("timeout connect 5000", "timeout client  50000", "timeout server  50000",
                 "errorfile 503 /etc/haproxy/errors/503.http", "option  httplog"):
        assert kept in rows, kept
    text = " ".join(rows)
    for added in ("retry-on", "retries", "observe", "check", "redispatch", "maxconn"):
        assert added not in text, added


def test_hardened_has_each_mechanism_the_issue_names() -> None:
    rows = _directives("hardened")
    for key in ("timeout connect", "timeout server", "timeout client", "timeout queue"):
        assert any(r.startswith(key + " ") for r in rows), key
    assert "retries 3" in rows and "option redispatch" in rows and "http-reuse safe" in rows
    assert "retry-on conn-failure empty-response response-timeout 502 503 504" in rows
    assert "http-request disable-l7-retry if METH_POST || { method PATCH }" in rows
    [server] = [r for r in rows if r.startswith("server ")]
    for word in ("check", "inter", "fastinter", "rise", "observe layer7", "error-limit",
                 "on-error mark-down", "maxconn"):
        assert f" {word} " in f" {server} ", word
    errors = [r for r in rows if r.startswith("http-error status")]
    assert [e.split()[2] for e in errors] == ["502", "503", "504"]
    assert all("content-type application/json" in e for e in errors)


def test_every_hardened_line_not_in_the_package_cites_the_manual() -> None:
    package = {"log     global", "mode    http", "option  httplog", "option  dontlognull",
               "global", "defaults", "frontend gateway", "backend upstream", "bind :8000",
               "default_backend upstream"}
    lines = _lines("hardened")
    for index, row in enumerate(lines):
        text = row.strip()
        if not text or text.startswith("#") or text in package or text.startswith("errorfile"):
            continue
        above = []
        for prev in reversed(lines[:index]):
            if not prev.strip().startswith("#"):
                if prev.strip().startswith("http-error"):
                    continue  # the three http-error lines share one comment
                break
            above.append(prev)
        assert any(SECTION.search(c) for c in above), f"hardened.cfg:{index + 1}: {text}"


def test_the_folder_is_the_only_thing_the_image_needs() -> None:
    dockerfile = (FOLDER / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) /etc/gateway-haproxy/$", dockerfile, flags=re.MULTILINE)
    assert copied
    for name in " ".join(copied).split():
        assert (FOLDER / name).is_file(), name
    assert 'LABEL gateway-chaos.writable="/tmp"' in dockerfile and "USER haproxy" in dockerfile
