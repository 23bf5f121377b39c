"""Secrets by name and by shape stay out of every output of a run (issue 15, item 5).

A scenario carries each leak shape; the real engine runs it through a session that only
writes what a real one would (container logs, request records, events), then the real
writers write result.json, junit.xml and report.html. No secret string may be in any file
of the run folder, in the console output, or in the rerun command.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.engine import run_scenario
from chaos.observe.events import EventBus, LoadWarning
from chaos.report.mask import MASK, Masker, is_secret_name
from chaos.report.mask_yaml import mask_yaml
from chaos.report.shapes import mask_shapes
from chaos.scenario.loader import check_scenario
from chaos.verdict.result import PhaseWindow

MULTI = ("multi-line-secret-part-one", "multi-line-secret-part-two")
BEARER = "sk-bearer0123456789abcdefXYZ"
DB_PASSWORD = "db-pass-5f3a9c"
SET_TOKEN = "set0123456789ABCDEFsecret"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIzNDU2"
HEADER_KEY = "hdr-key-77aa99bb"
LITERAL = "literal-block-secret-xyz"
SECRETS = (*MULTI, BEARER, DB_PASSWORD, SET_TOKEN, JWT, HEADER_KEY, LITERAL)

SCENARIO = f"""\
name: leaky
description: every shape of secret a scenario can carry
services:
  backend: {{build: docker/backend, port: 8080, health: /healthz}}
  gateway:
    build: docker/gateway
    port: 8000
    env:
      UPSTREAM_URL: http://backend:8080
      MULTI_TOKEN: >-
        {MULTI[0]}
        {MULTI[1]}
      PRIVATE_PASSWORD: |
        {LITERAL}
      AUTH: Bearer {BEARER}
      DATABASE_URL: postgres://app:{DB_PASSWORD}@db:5432/app
      SESSION: {JWT}
load:
  target: gateway
  users: 1
  requests:
    - name: chat
      path: /v1/chat
      headers: {{X-Api-Key: {HEADER_KEY}}}
phases:
  - {{name: baseline, duration: 1s}}
"""


class LeakySession:
    """Writes what a real session writes, with the secrets in it as services would print them."""

    provider, images = "fake", {"gateway": "fake:1"}
    breaker_samples: list[tuple[float, float]] = []
    upstream_samples: list[tuple[float, float]] = []
    capture_names: dict[str, str] = {}
    captured = None
    fault_records: list = []

    def __init__(self, scenario: object, run_id: str, run_dir: Path, bus: EventBus) -> None:
        self.run_dir, self.bus = run_dir, bus
        self.records_path = run_dir / "requests.ndjson"
        self.t0 = time.time()
        self.windows = [PhaseWindow("baseline", 0.0, 1.0)]
        self.logs: dict[str, str] = {}

    def run(self) -> None:
        lines = [f"Authorization: Bearer {BEARER}", f"Proxy-Authorization: Basic {DB_PASSWORD}9=",
                 f"x-api-key: {HEADER_KEY}", f"connecting to postgres://app:{DB_PASSWORD}@db/app",
                 f"session={JWT}", f"token part {MULTI[0]}", f"loaded {SET_TOKEN}",
                 f"{{'Authorization': 'Bearer {BEARER}'}}", f"literal {LITERAL}"]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(self.t0))
        text = "\n".join(f"{stamp} {line}" for line in lines) + "\n"
        self.logs = {"gateway": text}
        (self.run_dir / "logs").mkdir()
        (self.run_dir / "logs" / "gateway.log").write_text(text, encoding="utf-8")
        self.records_path.write_text(
            f'{{"t": {self.t0}, "phase": "baseline", "name": "chat", "outcome": "ok", '
            f'"status": 200, "latency_ms": 1.0, "detail": "Authorization: Bearer {BEARER}"}}\n',
            encoding="utf-8")
        self.bus.emit(LoadWarning(text=f"gateway env AUTH=Bearer {BEARER} DB {DB_PASSWORD}"))

    def teardown(self) -> None:
        pass


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    tmp = tmp_path_factory.mktemp("leaky")
    path = tmp / "leaky.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    sets = [f"services.gateway.env.AUTH2=Bearer {SET_TOKEN}"]
    scenario, _ = check_scenario(path, sets)
    command = "chaos run " + shlex.quote(str(path)) + "".join(f" --set {shlex.quote(s)}"
                                                              for s in sets)
    capture = pytest.MonkeyPatch()
    import io
    import sys

    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    capture.setattr(sys, "stderr", out)
    try:
        result = run_scenario(scenario, file=str(path), scenario_yaml=SCENARIO,
                              report_root=tmp / "reports", command=command,
                              session_factory=LeakySession)  # type: ignore[arg-type]
    finally:
        capture.undo()
    return Path(result.report_dir), out.getvalue(), result.command


def test_no_secret_in_any_file_of_the_run(leaky_run: tuple[Path, str, str]) -> None:
    run_dir, _, _ = leaky_run
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"result.json", "junit.xml", "report.html", "gateway.log",
                                       "requests.ndjson", "events.ndjson"}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"{path.name} leaks {leaked}"


def test_no_secret_on_the_console_or_in_the_rerun_command(
        leaky_run: tuple[Path, str, str]) -> None:
    _, console, command = leaky_run
    assert not [s for s in SECRETS if s in console]
    assert not [s for s in SECRETS if s in command]
    assert "AUTH2=Bearer ****" in command


def test_the_report_still_shows_what_is_not_secret(leaky_run: tuple[Path, str, str]) -> None:
    html = (leaky_run[0] / "report.html").read_text(encoding="utf-8")
    for kept in ("UPSTREAM_URL: http://backend:8080", "postgres://app:****@db:5432/app",
                 "MULTI_TOKEN: ****", "AUTH: Bearer ****"):
        assert kept in html, kept


def test_a_multi_line_value_keeps_the_line_count() -> None:
    text = "env:\n  A_TOKEN: >-\n    one\n    two\n  MODE: on\n"
    masked = mask_yaml(text, is_secret_name)
    assert masked.count("\n") == text.count("\n")
    assert "one" not in masked and "two" not in masked and "MODE: on" in masked
    assert masked.splitlines()[1] == f"  A_TOKEN: {MASK}"


@pytest.mark.parametrize(("text", "hidden"), [
    ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
    ("key sk-proj-abcdefghijklmnop1234 used", "sk-proj-abcdefghijklmnop1234"),
    ("redis://:s3cretpass@cache:6379/0", "s3cretpass"),
    ("https://user:pa55word@example.test/x", "pa55word"),
    (f"jwt {JWT}", JWT),
    ("Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("ghp_0123456789abcdefghijABCDEFGHIJ0123", "ghp_0123456789abcdefghijABCDEFGHIJ0123"),
    ("AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
])
def test_shapes_are_masked_under_any_name(text: str, hidden: str) -> None:
    out = Masker().text(text)
    assert hidden not in out and MASK in out


@pytest.mark.parametrize("text", [
    "Basic authentication failed for the upstream",
    "upstream http://backend:8080/v1/chat answered 502",
    "the bearer of bad news",
    "task-scheduler started 12 workers",
    "phase fault: 3 resets, 502 after 3 attempts",
    "service gateway ready (gateway-chaos/portkey:7c9a2672202a, 1.1s)",
    "chaos run llm-ttft-stall --gateway portkey:hardened",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_shapes(text) == text and Masker().log(text) == text


def test_a_key_next_to_portkey_is_still_masked() -> None:
    """Portkey's name holds "key": the gateway spec is not a secret, its API key is."""
    assert "abcd1234" not in Masker().log("PORTKEY_API_KEY=abcd1234 portkey:stock")
    assert "portkey:stock" in Masker().log("PORTKEY_API_KEY=abcd1234 portkey:stock")


@pytest.mark.parametrize("rule", ["text", "log"])
def test_a_name_part_that_is_an_ordinary_word_holds_no_secret(rule: str) -> None:
    """One rule wherever a name is judged (by name in text and logs, environments): a
    name part such as Portkey is no key, wherever it sits in the name; another part is."""
    mask = getattr(Masker(), rule)
    for text in ("portkey_url: http://gw:8787", "x_portkey=stock", "x-portkey: on"):
        assert mask(text) == text
    assert mask("portkey:api_key: abcd1234") == f"portkey:api_key: {MASK}"
    assert mask("portkey_token=abcd1234") == f"portkey_token={MASK}"
    assert Masker().env({"PORTKEY_URL": "http://gw:8787", "PORTKEY_API_KEY": "abcd1234"}) == {
        "PORTKEY_URL": "http://gw:8787", "PORTKEY_API_KEY": MASK}
    assert not is_secret_name("PORTKEY_URL") and is_secret_name("apikey")


def test_console_masks_shapes_when_the_scenario_has_no_secret_values() -> None:
    import io

    from chaos.observe.lines import ConsoleProgress
    from chaos.report.mask import masked

    stream = io.StringIO()
    masked(ConsoleProgress(stream=stream), Masker())(
        LoadWarning(text=f"probing with Authorization: Bearer {BEARER}"))
    assert BEARER not in stream.getvalue() and MASK in stream.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "a_token: >-", "PASSWORD: |", "  line one", "    sk-proj-abcdefghijklmnop12", "key: 'x",
    "- {TOKEN: [1, 2", "]}", "  url: postgres://u:p@h/db", "x: &a v", "y_key: *a", "\t", "---",
    "  Bearer abcdefgh12345678", '"k": "v', "[[[[", "}"]), max_size=12).map("\n".join))
def test_masking_any_yaml_text_never_raises_and_keeps_its_lines(text: str) -> None:
    masked_text = Masker().yaml(text)
    assert masked_text.count("\n") == text.count("\n")
    assert "sk-proj-abcdefghijklmnop12" not in masked_text
