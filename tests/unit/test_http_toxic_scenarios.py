"""HTTP- and stream-aware toxics in the scenario language: accepted with their attributes,
a bad attribute is exit 2 naming file:line:key, and a run on a real Toxiproxy server (image,
binary or TOXIPROXY_URL) refuses them with exit 2 before anything is built or started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import ScenarioError
from chaos.scenario.loader import load_scenario
from tests.fixtures.scenarios import MINIMAL, write_scenario

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("chaos")
CHAOS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "chaos.cli"]
FAULT_LINE = MINIMAL.splitlines().index("    duration: 2s") + 4  # the fault phase's faults: line

# What the issue-21 scenarios need: the first 20 requests answer 503, a stream's first token
# never comes, an in-band error mid-stream.
BURST = ('{proxy: backend, toxic: {type: http_abort, attributes: {status: 503, first: 20, '
         'headers: {Retry-After: 1}, body: "{\\"error\\": \\"overloaded\\"}", '
         'match: {method: POST, path: /v1/, header: {X-Tenant: a}}}}}')
STALL = "{proxy: backend, toxic: {type: sse_stall, attributes: {after: 0}}}"
MIDSTREAM = ("{proxy: backend, toxic: {type: sse_error, toxicity: 0.5, attributes: "
             "{after: 3, message: upstream overloaded, code: overloaded}}}")


def _validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker-here.sock"}
    return subprocess.run([*CHAOS, "validate", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("fault", [BURST, STALL, MIDSTREAM,
                                   "{proxy: backend, toxic: {type: http_reset, "
                                   "attributes: {at: response}}}",
                                   "{proxy: backend, toxic: {type: http_latency, "
                                   "attributes: {latency: 200, jitter: 50, at: response}}}",
                                   "{proxy: backend, toxic: {type: sse_cut, "
                                   "attributes: {after: 2, how: reset}}}",
                                   "{proxy: backend, toxic: {type: sse_corrupt}}"])
def test_accepted_and_sent_as_the_api_takes_them(tmp_path: Path, fault: str) -> None:
    scenario = load_scenario(write_scenario(tmp_path, fault=fault))
    toxic = scenario.phases[1].faults[0].toxic  # type: ignore[union-attr]
    attributes = toxic.api_attributes()
    assert all(value is not None for value in attributes.values())
    if toxic.type == "http_abort":
        assert attributes["first"] == 20 and attributes["headers"] == {"Retry-After": 1}
        assert attributes["match"] == {"method": "POST", "path": "/v1/",
                                       "header": {"X-Tenant": "a"}}


@pytest.mark.parametrize(("attributes", "key", "words"), [
    ("{status: 42}", "attributes.status", "greater than or equal to 200"),
    ("{stauts: 500}", "attributes.stauts", "unknown key"),
    ("{first: -1}", "attributes.first", "greater than or equal to 0"),
    ("{match: {verb: GET}}", "attributes.match.verb", "unknown key"),
    ("{match: {path: v1}}", "attributes.match.path", "pattern"),
])
def test_a_bad_attribute_is_exit_2_with_file_line_key(
        tmp_path: Path, attributes: str, key: str, words: str) -> None:
    fault = f"{{proxy: backend, toxic: {{type: http_abort, attributes: {attributes}}}}}"
    path = write_scenario(tmp_path, fault=fault)
    done = _validate(path, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:{FAULT_LINE}: phases[1].faults[0].toxic.{key}" in done.stderr, done.stderr
    assert words in done.stderr


@pytest.mark.parametrize("kind", ["image", "binary", "url"])
def test_a_real_toxiproxy_refuses_them_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    from chaos.engine import run_scenario
    from chaos.proxy import provider
    from chaos.runtime import bootstrap
    from chaos.stack.docker import DockerStack

    monkeypatch.setenv("CHAOS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "runs").mkdir(parents=True)
    started: list[str] = []
    monkeypatch.setattr(bootstrap, "ensure_engine", lambda: object())
    monkeypatch.setattr(provider, "choose", lambda *a, **k: provider.ProviderChoice(
        f"a real server ({kind})", provider.REAL_IMAGE if kind != "url" else None, None,
        kind=kind, url="http://127.0.0.1:9" if kind == "url" else None))
    monkeypatch.setattr(DockerStack, "_build_images", lambda self, client: started.append("build"))
    path = write_scenario(tmp_path, fault=BURST)
    scenario = load_scenario(path)
    with pytest.raises(ScenarioError) as caught:
        run_scenario(scenario, file=str(path), scenario_yaml=path.read_text(), quiet=True,
                     report_root=tmp_path / "reports", stack_factory=DockerStack)
    assert caught.value.exit_code == 2
    text = caught.value.render()
    assert "phases[1].faults[0].toxic.type" in text and "http_abort" in text, text
    assert "real Toxiproxy server" in text
    assert started == []
