"""The Caddy gateway profile (docker/gateways/caddy): what a user relies on without Docker.

The entrypoint refuses an unknown profile or a missing upstream with exit 2 before Caddy
starts; stock is one bare reverse_proxy (Caddy's defaults); hardened sets the retry, passive
health, timeout, streaming and error-body directives of Caddy's reverse_proxy docs, each
under a comment saying which section recommends it. (That Caddy 2.6.2 itself accepts both
files is checked by the image build, `caddy validate`.)
"""

from __future__ import annotations

import re
import subprocess

import pytest

from chaos.runtime.paths import project_root
from chaos.scenario.gateways import load_profile

FOLDER = project_root() / "docker" / "gateways" / "caddy"
HARDENED_SETTINGS = (
    "auto_https", "admin", "lb_try_duration", "lb_try_interval", "fail_duration", "max_fails",
    "unhealthy_status", "unhealthy_latency", "unhealthy_request_count", "flush_interval",
    "dial_timeout", "response_header_timeout", "read_timeout", "handle_errors",
)


def _lines(profile: str) -> list[str]:
    return (FOLDER / f"{profile}.Caddyfile").read_text(encoding="utf-8").splitlines()


def _directives(profile: str) -> dict[str, str]:
    """First word of each setting line -> the rest (comments and braces left out)."""
    found: dict[str, str] = {}
    for line in _lines(profile):
        words = line.split("#", 1)[0].split() if not line.strip().startswith("#") else []
        if words and words[0] not in ("{", "}"):
            found.setdefault(words[0], " ".join(words[1:]))
    return found


def test_the_profile_loads_with_both_configs_health_and_metrics() -> None:
    profile = load_profile(FOLDER / "gateway.yaml")
    assert (profile.name, profile.port, profile.health, profile.metrics) == (
        "caddy", 8000, "/healthz", "/metrics")
    assert sorted(profile.profiles) == ["hardened", "stock"]
    assert profile.breaker is None  # Caddy exposes no breaker state: the witness judges
    assert all((FOLDER / f"{key}.Caddyfile").is_file() for key in profile.profiles)


@pytest.mark.parametrize(("env", "words"), [
    ({"GATEWAY_PROFILE": "tuned", "UPSTREAM_URL": "http://b:1"}, "unknown GATEWAY_PROFILE 'tuned'"),
    ({"GATEWAY_PROFILE": "stock"}, "UPSTREAM_URL must be http://host:port"),
])
def test_the_entrypoint_refuses_bad_input_with_exit_2(env: dict[str, str], words: str) -> None:
    proc = subprocess.run(["sh", str(FOLDER / "entrypoint.sh")],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_both_answer_health_and_metrics_themselves_and_proxy_the_rest() -> None:
    for profile in ("stock", "hardened"):
        text = "\n".join(_lines(profile))
        assert re.search(r"handle /healthz \{\s*header Content-Type application/json\s*"
                         r"respond `\{\"status\":\"ok\"\}` 200", text), profile
        assert re.search(r"handle /metrics \{\s*metrics\s*\}", text), profile
        assert "reverse_proxy {$UPSTREAM}" in text and ":8000 {" in text, profile
        assert _directives(profile)["auto_https"] == "off", profile


def test_stock_is_a_bare_reverse_proxy_with_caddys_defaults() -> None:
    assert re.search(r"reverse_proxy \{\$UPSTREAM\}\s*\n\s*\}", "\n".join(_lines("stock")))
    assert not set(_directives("stock")) & (set(HARDENED_SETTINGS) - {"auto_https", "admin"})


def test_hardened_sets_retries_passive_health_timeouts_streaming_and_json_errors() -> None:
    found = _directives("hardened")
    assert {key: found.get(key) for key in HARDENED_SETTINGS[2:-1]} == {
        "lb_try_duration": "5s", "lb_try_interval": "250ms", "fail_duration": "30s",
        "max_fails": "5", "unhealthy_status": "5xx", "unhealthy_latency": "1s",
        "unhealthy_request_count": "32", "flush_interval": "-1", "dial_timeout": "1s",
        "response_header_timeout": "2s", "read_timeout": "2s",
    }
    assert found["@gateway"] == "expression `{err.status_code} in [502, 503, 504]`"
    respond = next(line.strip() for line in _lines("hardened")
                   if line.strip().startswith("respond @gateway"))
    assert respond.endswith("{err.status_code}") and '{"error":' in respond


def test_every_hardened_setting_sits_under_a_comment() -> None:
    lines = [line.strip() for line in _lines("hardened")]
    for key in HARDENED_SETTINGS:
        index = next(i for i, line in enumerate(lines) if line.split()[:1] == [key])
        assert lines[index - 1].startswith("#"), f"hardened.Caddyfile:{index + 1}: {key}"


def test_the_image_copies_the_folder_and_validates_both_configs() -> None:
    dockerfile = (FOLDER / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) /etc/gateway-caddy/$", dockerfile, flags=re.MULTILINE)
    for name in " ".join(copied).split():
        assert (FOLDER / name).is_file(), name
    assert "caddy validate --adapter caddyfile" in dockerfile
    assert 'LABEL gateway-chaos.writable="/tmp"' in dockerfile and "USER caddy" in dockerfile
