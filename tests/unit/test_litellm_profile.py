"""The LiteLLM gateway profile (docker/gateways/litellm): what a user relies on without Docker.

One exact litellm version (never the compromised 1.107.0) and its whole closure pinned by
hash; the entrypoint renders stock as a bare model_list on UPSTREAM_URL and hardened with
one fallback model group per FALLBACK_URLS entry, in order, and refuses a bad profile or
URL with exit 2 before LiteLLM starts; every hardened setting sits under a comment.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from chaos.runtime.paths import project_root
from chaos.scenario.gateways import load_profile

FOLDER = project_root() / "docker" / "gateways" / "litellm"
UP, FB1, FB2 = "http://provider-a:8080", "http://provider-b:8080", "http://provider-c:8080"


@pytest.fixture()
def entrypoint(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("litellm_entrypoint", FOLDER / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CONFIG_DIR", str(FOLDER))
    return module


def _groups(config: dict[str, Any]) -> dict[str, str]:
    return {d["model_name"]: d["litellm_params"]["api_base"] for d in config["model_list"]}


def test_the_profile_loads_with_both_configs_and_reads_fallback_urls() -> None:
    profile = load_profile(FOLDER / "gateway.yaml")
    assert (profile.name, profile.port, profile.health) == ("litellm", 8000, "/health/readiness")
    assert (profile.upstream_env, profile.fallback_env) == ("UPSTREAM_URL", "FALLBACK_URLS")
    assert profile.api == "llm"  # it routes only the LLM APIs
    assert sorted(profile.profiles) == ["hardened", "stock"]


def test_one_exact_litellm_version_and_every_wheel_is_pinned_by_hash() -> None:
    text = (FOLDER / "requirements.txt").read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", text, flags=re.MULTILINE))
    assert pins["litellm"] == "1.105.7" and pins["litellm-proxy-extras"]
    assert len(pins) > 100
    blocks = re.split(r"\n(?=[a-z0-9._-]+==)", text[text.index("\n" + next(iter(pins))) + 1:])
    assert len(blocks) == len(pins)
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", block) for block in blocks)
    assert "1.107.0" not in re.sub(r"^#.*$", "", text, flags=re.MULTILINE)
    assert "litellm[proxy]==1.105.7" in (FOLDER / "requirements.in").read_text(encoding="utf-8")
    dockerfile = (FOLDER / "Dockerfile").read_text(encoding="utf-8")
    assert "--no-index" in dockerfile and "--require-hashes" in dockerfile


def test_stock_maps_both_models_to_the_upstream_and_nothing_else(entrypoint: ModuleType) -> None:
    config = entrypoint.render("stock", UP + "/", f"{FB1},{FB2}")
    assert _groups(config) == {"gpt-4o-mini": f"{UP}/v1", "claude-3-5-haiku": f"{UP}/v1"}
    assert [d["litellm_params"]["model"] for d in config["model_list"]] == [
        "openai/gpt-4o-mini", "openai/claude-3-5-haiku"]
    assert set(config) == {"model_list"}


def test_hardened_falls_back_to_each_fallback_url_in_order(entrypoint: ModuleType) -> None:
    config = entrypoint.render("hardened", UP, f" {FB1} ,{FB2},")
    assert _groups(config) == {
        "gpt-4o-mini": f"{UP}/v1", "claude-3-5-haiku": f"{UP}/v1",
        "gpt-4o-mini@fallback-1": f"{FB1}/v1", "claude-3-5-haiku@fallback-1": f"{FB1}/v1",
        "gpt-4o-mini@fallback-2": f"{FB2}/v1", "claude-3-5-haiku@fallback-2": f"{FB2}/v1"}
    router = config["router_settings"]
    chain = [{"gpt-4o-mini": ["gpt-4o-mini@fallback-1", "gpt-4o-mini@fallback-2"]},
             {"claude-3-5-haiku": ["claude-3-5-haiku@fallback-1", "claude-3-5-haiku@fallback-2"]}]
    assert router["fallbacks"] == router["context_window_fallbacks"] == chain
    assert router["content_policy_fallbacks"] == chain
    assert router["retry_policy"]["BadRequestErrorRetries"] == 0
    assert (router["num_retries"], router["timeout"], router["stream_timeout"]) == (2, 10, 5)
    assert (router["allowed_fails"], router["cooldown_time"]) == (3, 10)


def test_hardened_without_fallbacks_has_no_fallback_groups(entrypoint: ModuleType) -> None:
    config = entrypoint.render("hardened", UP, "")
    assert sorted(_groups(config)) == ["claude-3-5-haiku", "gpt-4o-mini"]
    assert config["router_settings"]["fallbacks"] == []


def test_every_hardened_setting_sits_under_a_comment() -> None:
    """Each router_settings key has its own comment line right above it."""
    lines = (FOLDER / "hardened.yaml").read_text(encoding="utf-8").splitlines()
    keys = [n for n, line in enumerate(lines) if re.match(r"^  [a-z_]+:", line)]
    assert len(keys) >= 9
    for number in keys:
        assert lines[number - 1].strip().startswith("#"), \
            f"hardened.yaml:{number + 1}: {lines[number].strip()} has no comment"
    text = "\n".join(lines)
    assert text.count("[docs/") >= 6  # each block names the LiteLLM docs page it follows


@pytest.mark.parametrize(("env", "words"), [
    ({"GATEWAY_PROFILE": "tuned", "UPSTREAM_URL": UP}, "unknown GATEWAY_PROFILE 'tuned'"),
    ({"GATEWAY_PROFILE": "stock"}, "UPSTREAM_URL must be http://host:port"),
    ({"GATEWAY_PROFILE": "stock", "UPSTREAM_URL": "provider-a:8080"}, "UPSTREAM_URL must be"),
    ({"GATEWAY_PROFILE": "stock", "UPSTREAM_URL": f"{UP}/v1"}, "with no path"),
    ({"GATEWAY_PROFILE": "hardened", "UPSTREAM_URL": UP, "FALLBACK_URLS": f"{FB1},b:1"},
     "FALLBACK_URLS[1] must be"),
])
def test_a_bad_variable_exits_2_with_a_message_before_litellm_starts(
        env: dict[str, str], words: str) -> None:
    script = str(FOLDER / "entrypoint.py")  # refuses before it reads a config or execs
    proc = subprocess.run([sys.executable, script], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in proc.stderr, proc.stderr


def test_the_rendered_config_is_yaml_litellm_reads(entrypoint: ModuleType) -> None:
    config = entrypoint.render("hardened", UP, FB1)
    assert yaml.safe_load(yaml.safe_dump(config, sort_keys=False)) == config
