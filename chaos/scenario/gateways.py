"""Gateway profiles (``docker/gateways/<name>/gateway.yaml``) and ``gateway: NAME:PROFILE``.

A profile says how to build and start a gateway (build folder, port, health path), which
env var takes the upstream and which picks the config, where its own metrics and breaker
state are, and the command that prints its version. A scenario names ``gateway:
haproxy:hardened`` (or ``chaos run --gateway``, which wins) and the load target's service
is rewritten from the profile before validation, so ``${proxy.backend}`` is checked as if
the file had said it. A bad gateway.yaml is exit 2 naming file:line:key, like a scenario.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chaos.errors import ScenarioError
from chaos.runtime.paths import project_root
from chaos.scenario.model_errors import validate_model
from chaos.scenario.yaml_marks import MarkedDocument, load_marked

PROFILE_FILE = "gateway.yaml"
UPSTREAM_KEY = "UPSTREAM_URL"  # the env var scenarios point their gateway's upstream with
FALLBACK_KEY = "FALLBACK_URLS"  # the scenario's ordered fallback providers, comma-separated
SPEC = re.compile(r"^([a-z][a-z0-9_-]{0,39}):([a-z][a-z0-9_-]{0,39})$")
_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_PATH = r"^/[^\x00-\x20\x7f]*$"
# What an `api: llm` gateway routes: OpenAI's and Anthropic's inference and model APIs.
LLM_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/embeddings",
             "/v1/models")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BreakerMetric(_Strict):
    metric: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
    open_value: float = 1.0


class GatewayProfile(_Strict):
    """One gateway.yaml (the contract: notes of issue 19, README "Gateway profiles")."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    description: str = ""
    build: str = Field(".", pattern=r"^[^\x00-\x1f\x7f]{1,1024}$",
                       description="the folder with the Dockerfile, relative to gateway.yaml")
    port: int = Field(ge=1, le=65535)
    health: str = Field(pattern=_PATH)
    upstream_env: str = Field(pattern=_ENV)
    fallback_env: str | None = Field(
        None, pattern=_ENV,
        description="the env var its entrypoint reads the comma-separated fallbacks from")
    profile_env: str | None = Field(None, pattern=_ENV)
    api: Literal["http", "llm"] = Field(
        "http", description="http: any HTTP traffic; llm: an LLM gateway that routes only the "
        "LLM APIs (LLM_PATHS), so only scenarios whose load sends nothing else run on it")
    profiles: dict[str, str] = Field(min_length=1)
    metrics: str | None = Field(None, pattern=_PATH)
    breaker: BreakerMetric | None = None
    version: list[str] = Field(min_length=1, max_length=20)
    tls: bool = Field(False, description="it serves TLS from TLS_DIR (reloading on SIGHUP) "
                      "and verifies https:// upstreams against TLS_CA (issue 22); without it "
                      "a scenario with TLS is refused on this gateway")


def gateways_dir() -> Path:
    return project_root() / "docker" / "gateways"


def load_profile(file: Path) -> GatewayProfile:
    """One gateway.yaml, validated; its name must be its folder's."""
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the gateway profile: {exc}", shown) from None
    doc = load_marked(text, shown)
    if not isinstance(doc.data, dict):
        raise ScenarioError("expected a mapping with name, port, health, upstream_env, "
                            "profiles, version", shown, 1)
    profile = validate_model(doc, GatewayProfile)
    if profile.name != file.parent.name:
        raise doc.error(("name",), f"must be the folder's name, {file.parent.name!r}")
    for key in profile.profiles:
        if not SPEC.match(f"{profile.name}:{key}"):
            raise doc.error(("profiles", key), "a profile name is lowercase letters, digits, - or _")
    if not (build_folder(file, profile) / "Dockerfile").is_file():
        raise doc.error(("build",), f"{build_folder(file, profile)} has no Dockerfile")
    return profile


def build_folder(file: Path, profile: GatewayProfile) -> Path:
    return (file.parent / profile.build).resolve()


def profile_files(folder: Path | None = None) -> list[Path]:
    """Every docker/gateways/<name>/gateway.yaml (folders without one are the caller's to
    refuse: see tests/docker/test_gateway_profiles.py)."""
    root = gateways_dir() if folder is None else folder
    return sorted(root.glob(f"*/{PROFILE_FILE}"))


def all_profiles() -> dict[str, GatewayProfile]:
    return {file.parent.name: load_profile(file) for file in profile_files()}


def known_specs() -> list[str]:
    """Every NAME:PROFILE there is, for error messages and `chaos gateways`."""
    out = []
    for file in profile_files():
        try:
            profile = load_profile(file)
        except ScenarioError:
            continue
        out += [f"{profile.name}:{key}" for key in profile.profiles]
    return out


def find(spec: str) -> tuple[GatewayProfile, str, Path]:
    """``NAME:PROFILE`` -> (its profile, the profile key, its gateway.yaml), or a
    ScenarioError (file left for the caller) listing what exists."""
    match = SPEC.match(spec)
    known = ", ".join(known_specs()) or "none"
    if match is None:
        raise ScenarioError(f"expected NAME:PROFILE such as nginx:hardened, got {spec!r} "
                            f"(known: {known})")
    name, key = match.groups()
    file = gateways_dir() / name / PROFILE_FILE
    if not file.is_file():
        raise ScenarioError(f"no gateway named {name!r} (no {file}); known: {known}")
    profile = load_profile(file)
    if key not in profile.profiles:
        raise ScenarioError(f"gateway {name} has no profile {key!r}; known: {known}")
    return profile, key, file


def apply_gateway(doc: MarkedDocument, cli: str | None = None) -> None:
    """Rewrite the load target's service from the named profile (``--gateway`` wins)."""
    data = doc.data
    spec = cli if cli is not None else data.get("gateway")
    if spec is None:
        return
    try:
        if not isinstance(spec, str):
            raise ScenarioError(f"expected NAME:PROFILE, got {type(spec).__name__}")
        profile, name, file = find(spec)
        _rewrite(data, profile, name, file)
    except ScenarioError as exc:
        if exc.file != "<scenario>":
            raise  # the profile file itself is bad: the error names its file and line
        if cli is not None:
            raise ScenarioError(exc.message, "--gateway") from None
        raise doc.error(("gateway",), exc.message) from None
    data["gateway"] = spec


def not_routed(profile: GatewayProfile, data: dict[str, Any]) -> str | None:
    """Why an `api: llm` gateway cannot carry this scenario's load (None: it can): the first
    load request that is not an LLM API call."""
    if profile.api != "llm":
        return None
    load = data.get("load")
    requests = load.get("requests") if isinstance(load, dict) else None
    for index, request in enumerate(requests if isinstance(requests, list) else []):
        if not isinstance(request, dict) or "llm" in request:
            continue
        path = str(request.get("path", ""))
        if not path.split("?")[0].startswith(LLM_PATHS):
            method = request.get("method", "GET")
            return (f"{profile.name} is an LLM gateway (api: llm in its gateway.yaml): it routes "
                    f"only {', '.join(LLM_PATHS)}, and load.requests[{index}] sends {method} "
                    f"{path}; run this scenario on an HTTP gateway")
    return None


def no_tls(profile: GatewayProfile, data: dict[str, Any]) -> str | None:
    """Why this gateway cannot run this scenario's TLS (None: it can, or there is none)."""
    if profile.tls:
        return None
    load, services = data.get("load"), data.get("services")
    wants = isinstance(load, dict) and load.get("tls") is True
    if isinstance(services, dict):
        wants = wants or any(isinstance(s, dict) and s.get("tls") is True
                             for s in services.values())
    if not wants:
        return None
    return (f"{profile.name} does not serve TLS from the run's folder nor trust the run's CA "
            f"(no tls: true in its gateway.yaml): this scenario's TLS cannot run on it yet")


def _rewrite(data: dict[str, Any], profile: GatewayProfile, name: str, file: Path) -> None:
    reason = not_routed(profile, data) or no_tls(profile, data)
    if reason is not None:
        raise ScenarioError(reason)
    target, services, service = _load_target(data)
    new_env = {profile.upstream_env: service["env"][UPSTREAM_KEY]}
    if profile.fallback_env and FALLBACK_KEY in service["env"]:
        new_env[profile.fallback_env] = service["env"][FALLBACK_KEY]
    if profile.profile_env:
        new_env[profile.profile_env] = name
    kept = {k: v for k, v in service.items() if k not in ("build", "image", "url", "port",
                                                          "health", "env")}
    services[target] = {**kept, "build": _relative(build_folder(file, profile)),
                        "port": profile.port, "health": profile.health, "env": new_env}
    _replace_breaker(data, target, profile)


def _load_target(data: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(load.target, services, the target's service) when its env has UPSTREAM_URL."""
    load, services = data.get("load"), data.get("services")
    target = load.get("target") if isinstance(load, dict) else None
    if isinstance(target, str) and isinstance(services, dict):
        service = services.get(target)
        if isinstance(service, dict) and isinstance(service.get("env"), dict) \
                and UPSTREAM_KEY in service["env"]:
            return target, services, service
    raise ScenarioError(f"a gateway profile replaces the load target's service, which must "
                        f"say where its upstream is: load.target naming a service with env "
                        f"{UPSTREAM_KEY} (e.g. \"${{proxy.backend}}\")")


def _replace_breaker(data: dict[str, Any], target: str, profile: GatewayProfile) -> None:
    probes = data.get("probes")
    if not isinstance(probes, dict):
        return
    breaker = probes.get("breaker")
    if not isinstance(breaker, dict) or breaker.get("service") != target:
        return
    if profile.breaker is None or profile.metrics is None:
        del probes["breaker"]  # the upstream witness judges the breaker
        return
    kept = {k: v for k, v in breaker.items() if k == "interval"}
    probes["breaker"] = {**kept, "service": target, "path": profile.metrics,
                         "metric": profile.breaker.metric,
                         "open_value": profile.breaker.open_value}


def _relative(folder: Path) -> str:
    """The build folder as the loader reads builds: relative to the project root."""
    root = project_root().resolve()
    return os.path.relpath(folder, root) if folder.is_relative_to(root) else str(folder)


def list_lines() -> list[str]:
    """`chaos gateways`: one line per NAME:PROFILE with its description (a broken
    gateway.yaml is listed with its error, so it is seen, not skipped)."""
    lines = []
    for file in profile_files():
        try:
            profile = load_profile(file)
        except ScenarioError as exc:
            lines.append(f"{file.parent.name}  INVALID: {exc.render()}")
            continue
        for key, text in profile.profiles.items():
            lines.append(f"{profile.name}:{key}  {text}")
    width = max((len(line.split("  ", 1)[0]) for line in lines), default=0)
    return [f"{head:<{width}}  {rest}" for head, rest in (line.split("  ", 1) for line in lines)]
