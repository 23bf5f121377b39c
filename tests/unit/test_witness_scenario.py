"""The scenario's `witness:` section as a user meets it: `chaos validate` refuses a proxy or
service that does not exist, and `use: journal` without a journal, naming file:line:key (exit 2);
`use: tap` on a Toxiproxy without a tap is refused before anything starts (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.scenario.loader import load_scenario
from tests.fixtures.offline import refused_before_start, validate
from tests.fixtures.scenarios import MINIMAL, write_scenario

WITNESS_LINE = len(MINIMAL.splitlines()) + 1  # `witness:` comes after the minimal scenario


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
    proc = validate(path, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"{path}:{line}: {key}: "), proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_accepts_a_witness(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, extra="witness:\n  use: tap\n  proxies: [backend]\n"
                          "  journal: {service: backend, path: /journal}\n")
    proc = validate(path, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_bare_off_is_off(tmp_path: Path) -> None:
    """YAML 1.1 reads `off` as false; the witness section takes it as written."""
    path = write_scenario(tmp_path, extra="witness:\n  use: off\n")
    assert validate(path, tmp_path).returncode == 0
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
    from chaos.proxy import provider

    choice = provider.ProviderChoice(f"toxiproxy image {provider.REAL_IMAGE}",
                                     provider.REAL_IMAGE, ["-host=0.0.0.0"], kind="image")
    path = write_scenario(tmp_path, extra="witness:\n  use: tap\n")
    text = refused_before_start(tmp_path, monkeypatch, choice, path).render()
    assert text.startswith(f"{path}:{WITNESS_LINE + 1}: witness.use: "), text
    assert "has no tap" in text and "journal" in text
