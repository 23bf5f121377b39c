"""Every gateway profile starts healthy, routes the load and names its exact version
(issue 19): `chaos run --gateway NAME:PROFILE` of a 2-phase scenario per profile found
under docker/gateways/*/gateway.yaml. A folder there without gateway.yaml, or with a bad
one, is a failing case, not a skipped one. About 10 s per profile once images are built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.gateways import PROFILE_FILE, find, gateways_dir, load_profile

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name: gateway-profile
description: A gateway profile routes steady traffic to the reference backend.
services:
  backend: {build: docker/backend, port: 8080, health: /healthz}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.backend}"}}
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 4
  spawn_rate: 4
  requests:
    - {name: get-item, path: "/api/items/7"}
phases:
  - {name: baseline, duration: 3s}
  - {name: steady, duration: 2s}
assertions:
  - {phase: baseline, success_rate: ">= 0.95", resets: 0}
  - {phase: steady, success_rate: ">= 0.95"}
"""
# An `api: llm` gateway routes only the LLM APIs: its case is a chat stream to a provider.
LLM_SCENARIO = """\
name: gateway-profile-llm
description: An LLM gateway profile routes steady chat traffic to the LLM provider.
services:
  provider: {build: docker/llm-provider, port: 8080, llm: {tokens: 8, token_delay: 2ms}}
  gateway: {build: docker/gateway, port: 8000, env: {UPSTREAM_URL: "${proxy.provider}"}}
proxies:
  provider: {upstream: "provider:8080"}
load:
  target: gateway
  users: 8
  spawn_rate: 8
  request_id: {body_field: user}
  requests:
    - {name: chat, method: POST, path: /v1/chat/completions,
       llm: {model: gpt-4o-mini, prompt_tokens: [10, 50], max_tokens: [8, 8], stream: true}}
phases:
  - {name: baseline, duration: 3s}
  - {name: steady, duration: 2s}
assertions:
  - {phase: baseline, success_rate: ">= 0.8", resets: 0, truncated_success: 0}
  - {phase: steady, success_rate: ">= 0.8"}
"""  # a stream takes 0.2-0.6 s on a busy machine: 20 of 20 already has a Wilson low end of 0.84


def _text_for(spec: str) -> str:
    profile, _, _ = find(spec)
    return LLM_SCENARIO if profile.api == "llm" else SCENARIO


def _cases() -> list[object]:
    """NAME:PROFILE of every profile; a folder that cannot give one is a failing case."""
    cases: list[object] = []
    for folder in sorted(p for p in gateways_dir().iterdir() if p.is_dir()):
        file = folder / PROFILE_FILE
        if not file.is_file():
            cases.append(pytest.param(f"missing:{folder}", id=f"{folder.name}-no-gateway.yaml"))
            continue
        try:
            profile = load_profile(file)
        except ScenarioError as exc:
            cases.append(pytest.param(f"invalid:{exc.render()}", id=f"{folder.name}-invalid"))
            continue
        cases += [pytest.param(f"{profile.name}:{key}", id=f"{profile.name}-{key}")
                  for key in profile.profiles]
    return cases


@pytest.mark.parametrize("spec", _cases())
def test_a_profile_routes_the_load_and_names_its_version(tmp_path: Path, spec: str) -> None:
    assert not spec.startswith("missing:"), f"{spec[8:]} has no {PROFILE_FILE}"
    assert not spec.startswith("invalid:"), spec[8:]
    path = tmp_path / "gateway-profile.yaml"
    path.write_text(_text_for(spec), encoding="utf-8")
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "run", str(path), "--gateway", spec,
                           "--report-dir", str(reports), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=420)
    [run_dir] = [p for p in reports.iterdir() if p.is_dir() and not p.is_symlink()]
    result = json.loads((run_dir / "result.json").read_text())
    failed = [a["message"] for a in result["assertions"] if a["status"] != "pass"]
    assert proc.returncode == 0, (failed, result.get("error"), proc.stderr[-2000:])
    name, profile = spec.split(":")
    label = result["environment"]["gateway"]
    assert result["gateway"] == spec
    assert label.startswith(f"{name} ") and label.endswith(f" ({profile})"), label
    assert " unknown " not in label, (label, proc.stderr[-2000:])
    if name == "nginx":
        assert "nginx/1.22" in label, label
