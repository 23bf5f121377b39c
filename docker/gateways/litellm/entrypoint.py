#!/usr/bin/env python3
"""Render the chosen LiteLLM profile's config and run the proxy in the foreground.

GATEWAY_PROFILE (stock | hardened) picks /etc/gateway-litellm/<profile>.yaml; UPSTREAM_URL
(http://host:port, no path) is the primary provider and FALLBACK_URLS the ordered fallbacks
(comma-separated, same form; hardened only). Each model the scenario library asks for
(MODELS) becomes a deployment of LiteLLM's OpenAI-compatible provider (``openai/<model>``,
``api_base`` = URL + "/v1"); on hardened each fallback URL is a model group of its own,
``<model>@fallback-N``, listed in order in router_settings.fallbacks (and the context-window
and content-policy fallbacks). The config is written to /tmp (the root is read-only).
A bad variable is exit 2 with a message. Start-up is offline: see OFFLINE below.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import yaml

CONFIG_DIR = "/etc/gateway-litellm"
RENDERED = "/tmp/litellm/config.yaml"
PORT = "8000"
PROFILES = ("stock", "hardened")
MODELS = ("gpt-4o-mini", "claude-3-5-haiku")
# The provider key LiteLLM sends upstream (it needs one for openai/...); the providers here
# ignore it. Not a secret.
API_KEY = "sk-gateway-chaos-not-a-secret"
# Everything LiteLLM would otherwise fetch from the internet at start-up or on first use
# uses the copy inside the wheel instead (seen in its start-up log; see gateway.yaml).
OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",          # model prices/context windows
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",   # anthropic beta header map
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",         # guardrail policy templates
    "LITELLM_LOCAL_BLOG_POSTS": "True",               # admin UI news feed
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",       # auto-router catalogue
    "DISABLE_ADMIN_UI": "True",                       # no UI (and no UI files written)
    "HOME": "/tmp",
}
# Profile wiring, not a setting under test: LiteLLM 1.105 refuses to start without a master
# key, and the scenario library's clients carry no gateway credentials (the gateway sits on
# the run's private network). This starts it without authentication, as its start-up error
# text says to for such a setup.
# And the upstreams are OpenAI-compatible chat providers: LiteLLM 1.105 turns an Anthropic
# /v1/messages call for an openai/ deployment into OpenAI's Responses API (/v1/responses),
# which such providers need not serve; this makes it use /v1/chat/completions instead.
WIRING = {"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
          "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "true"}


class ConfigProblem(Exception):
    """A variable the profile cannot start with (exit 2)."""


def base_url(name: str, value: str) -> str:
    value = value.strip()
    rest = value[len("http://"):] if value.startswith("http://") else ""
    host = rest.rstrip("/")
    if not host or "/" in host or any(c.isspace() for c in host):
        raise ConfigProblem(f"{name} must be http://host:port with no path, got {value!r}")
    return f"http://{host}"


def deployment(group: str, model: str, url: str) -> dict[str, Any]:
    return {"model_name": group,
            "litellm_params": {"model": f"openai/{model}", "api_base": f"{url}/v1",
                               "api_key": API_KEY}}


def render(profile: str, upstream: str, fallbacks: str) -> dict[str, Any]:
    """The config LiteLLM runs with, from the profile's file and the two URL variables."""
    if profile not in PROFILES:
        raise ConfigProblem(f"unknown GATEWAY_PROFILE {profile!r} (expected stock or hardened)")
    primary = base_url("UPSTREAM_URL", upstream)
    extra = [base_url(f"FALLBACK_URLS[{i}]", part)
             for i, part in enumerate(fallbacks.split(",")) if part.strip()]
    with open(f"{CONFIG_DIR}/{profile}.yaml", encoding="utf-8") as fh:
        config: dict[str, Any] = yaml.safe_load(fh)
    models = [deployment(m, m, primary) for m in MODELS]
    router = config.get("router_settings")
    if isinstance(router, dict) and "fallbacks" in router:
        chains = {m: [f"{m}@fallback-{n}" for n in range(1, len(extra) + 1)] for m in MODELS}
        models += [deployment(f"{m}@fallback-{n}", m, url)
                   for n, url in enumerate(extra, 1) for m in MODELS]
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            if key in router:
                router[key] = [{m: chain} for m, chain in chains.items() if chain]
    config["model_list"] = models
    return config


def main() -> int:
    profile = os.environ.get("GATEWAY_PROFILE", "stock")
    try:
        config = render(profile, os.environ.get("UPSTREAM_URL", ""),
                        os.environ.get("FALLBACK_URLS", ""))
    except ConfigProblem as exc:
        print(f"litellm: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(RENDERED), exist_ok=True)
    with open(RENDERED, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    groups = sorted({d["model_name"] for d in config["model_list"]})
    print(f"litellm profile={profile} groups={','.join(groups)}", flush=True)
    env = {**os.environ, **OFFLINE, **WIRING}
    argv = ["litellm", "--config", RENDERED, "--host", "0.0.0.0", "--port", PORT,
            "--num_workers", "1"]
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
