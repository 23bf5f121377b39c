"""HTTP- and stream-aware toxics in the scenario language: accepted with their attributes,
a bad attribute is exit 2 naming file:line:key, and a run on a real Toxiproxy server (image,
binary or TOXIPROXY_URL) refuses them with exit 2 before anything is built or started."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.scenario.loader import load_scenario
from tests.fixtures.offline import refused_before_start, validate
from tests.fixtures.scenarios import MINIMAL, write_scenario

FAULT_LINE = MINIMAL.splitlines().index("    duration: 2s") + 4  # the fault phase's faults: line

# What the issue-21 scenarios need: the first 20 requests answer 503, a stream's first token
# never comes, an in-band error mid-stream.
BURST = ('{proxy: backend, toxic: {type: http_abort, attributes: {status: 503, first: 20, '
         'headers: {Retry-After: 1}, body: "{\\"error\\": \\"overloaded\\"}", '
         'match: {method: POST, path: /v1/, header: {X-Tenant: a}}}}}')
STALL = "{proxy: backend, toxic: {type: sse_stall, attributes: {after: 0}}}"
MIDSTREAM = ("{proxy: backend, toxic: {type: sse_error, toxicity: 0.5, attributes: "
             "{after: 3, message: upstream overloaded, code: overloaded}}}")


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
    done = validate(path, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:{FAULT_LINE}: phases[1].faults[0].toxic.{key}" in done.stderr, done.stderr
    assert words in done.stderr


@pytest.mark.parametrize("kind", ["image", "binary", "url"])
def test_a_real_toxiproxy_refuses_them_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    from chaos.proxy import provider

    choice = provider.ProviderChoice(
        f"a real server ({kind})", provider.REAL_IMAGE if kind != "url" else None, None,
        kind=kind, url="http://127.0.0.1:9" if kind == "url" else None)
    path = write_scenario(tmp_path, fault=BURST)
    text = refused_before_start(tmp_path, monkeypatch, choice, path).render()
    assert "phases[1].faults[0].toxic.type" in text and "http_abort" in text, text
    assert "real Toxiproxy server" in text
