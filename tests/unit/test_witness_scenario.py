"""The scenario's `witness:` section as a user meets it: `chaos validate` refuses a proxy or
service that does not exist, and `use: journal` without a journal, naming file:line:key (exit 2);
`use: tap` on a Toxiproxy without a tap is refused before anything starts (exit 2)."""

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
WITNESS_LINE = len(MINIMAL.splitlines()) + 1  # `witness:` comes after the minimal scenario


def _validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker-here.sock"}
    return subprocess.run([*CHAOS, "validate", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("section", "line", "key", "words"), [
    ("witness:\n  proxies: [backend, upstream]\n", WITNESS_LINE + 1, "witness.proxies[1]",
     "unknown proxy 'upstream' (known: backend)"),
    ("witness:\n  journal: {service: db}\n", WITNESS_LINE + 1, "witness.journal.service",
     "unknown service 'db' (known: backend, gateway)"),
    ("witness:\n  use: journal\n", WITNESS_LINE + 1, "witness.use", "use: journal needs witness.journal"),
    ("witness:\n  use: sometimes\n", WITNESS_LINE + 1, "witness.use", "auto"),
], ids=["unknown-proxy", "unknown-journal-service", "journal-without-journal", "bad-use"])
def test_validate_refuses_a_bad_witness(tmp_path: Path, section: str, line: int, key: str,
                                        words: str) -> None:
    path = write_scenario(tmp_path, extra=section)
    proc = _validate(path, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"{path}:{line}: {key}: "), proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_accepts_a_witness(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, extra="witness:\n  use: tap\n  proxies: [backend]\n"
                          "  journal: {service: backend, path: /journal}\n")
    proc = _validate(path, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_bare_off_is_off(tmp_path: Path) -> None:
    """YAML 1.1 reads `off` as false; the witness section takes it as written."""
    path = write_scenario(tmp_path, extra="witness:\n  use: off\n")
    assert _validate(path, tmp_path).returncode == 0
    assert load_scenario(path).witness.use == "off"
    assert load_scenario(path, ["witness.use=off"]).witness.use == "off"


def test_default_proxies_are_those_in_front_of_upstreams(tmp_path: Path) -> None:
    """A proxy in front of the load target carries the clients, not the gateway's attempts."""
    from chaos.scenario.references import witness_proxies

    text = write_scenario(tmp_path).read_text().replace(
        '  backend: {upstream: "backend:8080"}\n',
        '  backend: {upstream: "backend:8080"}\n  front: {upstream: "gateway:8000"}\n')
    path = tmp_path / "two.yaml"
    path.write_text(text)
    assert witness_proxies(load_scenario(path)) == ["backend"]


def test_tap_on_a_real_toxiproxy_is_refused_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's provider decides: a real Toxiproxy image has no tap, so `use: tap` is bad
    input (exit 2, file:line:key) before any image is built or container started."""
    from chaos.engine import run_scenario
    from chaos.proxy import provider
    from chaos.runtime import bootstrap
    from chaos.stack.docker import DockerStack

    monkeypatch.setenv("CHAOS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "runs").mkdir(parents=True)
    started: list[str] = []
    monkeypatch.setattr(bootstrap, "ensure_engine", lambda: object())
    monkeypatch.setattr(provider, "choose", lambda *a, **k: provider.ProviderChoice(
        f"toxiproxy image {provider.REAL_IMAGE}", provider.REAL_IMAGE, ["-host=0.0.0.0"],
        kind="image"))
    monkeypatch.setattr(DockerStack, "_build_images", lambda self, client: started.append("build"))
    path = write_scenario(tmp_path, extra="witness:\n  use: tap\n")
    scenario = load_scenario(path)
    with pytest.raises(ScenarioError) as caught:
        run_scenario(scenario, file=str(path), scenario_yaml=path.read_text(), quiet=True,
                     report_root=tmp_path / "reports", stack_factory=DockerStack)
    assert caught.value.exit_code == 2
    text = caught.value.render()
    assert text.startswith(f"{path}:{WITNESS_LINE + 1}: witness.use: "), text
    assert "has no tap" in text and "journal" in text
    assert started == []
