"""The `llm:` block of a service and the `llm` phase fault in scenario files: what loads,
what is refused with file:line:key (exit 2), and that the script the harness hands the
provider (CHAOS_LLM_SCRIPT) is one the provider takes, rule for rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.llm_provider import rules_json, script_env
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import LlmFault
from tests.fixtures.llm_provider import provider_modules
from tests.fixtures.scenarios import line_of, write_scenario

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
name: llm-demo
description: Two providers behind the reference gateway.
services:
  provider-a:
    build: docker/llm-provider
    port: 8080
    llm:
      models: [gpt-4o-mini]
      tokens: 24
      first_token_delay: 20ms
      token_delay: 5ms
      rules:
        - when: {model: "gpt-4o*", api: openai, stream: true, header: {X-Tenant: a},
                 requests: "1-20", window: [0s, 10s], share: 0.5}
          do: {status: 429, retry_after: 2s, retry_after_format: seconds}
        - do: {cut_after: 3, cut_with: rst}
  gateway:
    build: docker/gateway
    port: 8000
    env: {UPSTREAM_URL: "${proxy.provider-a}"}
proxies:
  provider-a: {upstream: "provider-a:8080"}
load:
  target: gateway
  users: 2
  request_id: {body_field: user}
  requests:
    - {name: chat, method: POST, path: /v1/chat/completions, json: {model: gpt-4o-mini, messages: []}}
phases:
  - name: baseline
    duration: 2s
  - name: fault
    duration: 2s
    faults:
      - {service: provider-a, llm: [{when: {requests: "every 2"}, do: {status: 503}}], for: 1s}
assertions:
  - {phase: baseline, resets: 0}
"""


def _write(tmp_path: Path, text: str) -> Path:
    return write_scenario(tmp_path, "llm.yaml", text)


def test_the_llm_block_and_fault_load_typed(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE))
    spec = scenario.services["provider-a"].llm
    assert spec is not None and spec.tokens == 24 and spec.first_token_delay == 0.02
    assert spec.rules[0].when.window == [0.0, 10.0] and spec.rules[0].do.retry_after == 2.0
    fault = scenario.phases[1].faults[0]
    assert isinstance(fault, LlmFault) and fault.service == "provider-a"
    assert fault.describe() == ("llm rules on provider-a: status=503 when requests=every 2"
                                " for 1s")


@pytest.mark.parametrize(("old", "new", "key"), [
    ("api: openai, stream", "api: openai, strem", "services.provider-a.llm.rules[0].when.strem"),
    ("retry_after_format: seconds", "retry_after_fromat: seconds",
     "services.provider-a.llm.rules[0].do.retry_after_fromat"),
    ("status: 429", "status: 700", "services.provider-a.llm.rules[0].do.status"),
    ("requests: \"1-20\"", "requests: \"first 20\"",
     "services.provider-a.llm.rules[0].when.requests"),
    ("share: 0.5", "share: 2", "services.provider-a.llm.rules[0].when.share"),
    ("api: openai", "api: cohere", "services.provider-a.llm.rules[0].when.api"),
    ("cut_with: rst", "cut_with: fn", "services.provider-a.llm.rules[1].do.cut_with"),
    ("tokens: 24", "tokenz: 24", "services.provider-a.llm.tokenz"),
    ('do: {status: 503}', 'do: {stauts: 503}', "phases[1].faults[0].llm[0].do.stauts"),
    ('when: {requests: "every 2"}', 'when: {request: "every 2"}',
     "phases[1].faults[0].llm[0].when.request"),
])
def test_a_bad_when_or_do_key_or_value_names_file_line_and_key(
        tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.key == key
    assert caught.value.line == line_of(text, new)
    assert caught.value.file == str(path) and caught.value.exit_code == 2


def test_combinations_that_cannot_run_are_refused(tmp_path: Path) -> None:
    text = BASE.replace("do: {cut_after: 3, cut_with: rst}", "do: {cut_after: 3, stall_after: 1}")
    with pytest.raises(ScenarioError, match="do not combine") as caught:
        load_scenario(_write(tmp_path, text))
    assert caught.value.key == "services.provider-a.llm.rules[1].do"


def test_an_llm_fault_needs_a_service_with_llm(tmp_path: Path) -> None:
    text = BASE.replace("{service: provider-a, llm:", "{service: gateway, llm:")
    with pytest.raises(ScenarioError, match=r"known: provider-a") as caught:
        load_scenario(_write(tmp_path, text))
    assert caught.value.key == "phases[1].faults[0].service"
    assert caught.value.line == line_of(text, "{service: gateway, llm:")


def test_chaos_validate_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("stream: true", "stream: yes please"))
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    line = line_of(BASE, "stream: true")
    assert f"{path}:{line}: services.provider-a.llm.rules[0].when.stream:" in proc.stderr


def test_the_provider_takes_the_script_the_harness_hands_it(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, BASE))
    spec = scenario.services["provider-a"].llm
    assert spec is not None
    env = script_env("provider-a", spec, "X-Chaos-Request-Id", "user")
    config = provider_modules().script.Config.parse(json.loads(env))
    assert (config.name, config.tokens, config.models) == ("provider-a", 24, ("gpt-4o-mini",))
    assert (config.first_token_delay, config.token_delay) == (0.02, 0.005)
    assert config.request_id_field == "user"
    script = provider_modules().script
    rules = script.parse_rules(list(config.rules), "script")
    assert rules[0].when.window == (0.0, 10.0) and rules[0].when.share == 0.5
    assert rules[0].do.retry_after == 2.0 and rules[1].do.cut_with == "rst"
    fault = scenario.phases[1].faults[0]
    assert isinstance(fault, LlmFault)
    installed = script.Script().install(rules_json(fault.llm))
    assert installed == "r1"


def test_a_provider_given_by_url_takes_no_script(tmp_path: Path) -> None:
    text = BASE.replace("    build: docker/llm-provider\n    port: 8080\n",
                        "    url: http://127.0.0.1:18080\n", 1).replace(
        "    build: docker/gateway\n    port: 8000\n    env: {UPSTREAM_URL: \"${proxy.provider-a}\"}\n",
        "    url: http://127.0.0.1:18000\n", 1)
    with pytest.raises(ScenarioError, match="cannot hand it a script") as caught:
        load_scenario(_write(tmp_path, text))
    assert caught.value.key == "services.provider-a.llm"
    named_only = text.replace(text[text.index("    llm:\n"):text.index("  gateway:")],
                              "    llm: {name: pa}\n")
    assert load_scenario(_write(tmp_path, named_only)).services["provider-a"].llm is not None
