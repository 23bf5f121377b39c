"""Secrets of service environments never reach an output: JSON, HTML, JUnit, logs, console."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from chaos.observe.events import FaultInjected, LoadWarning
from chaos.observe.lines import ConsoleProgress
from chaos.report.mask import MASK, Masker, masked, secret_values
from chaos.report.writer import write_reports
from tests.fixtures.report_cases import SECRET, hand_built

ENVS = [{"UPSTREAM_URL": "http://toxiproxy:20000", "OPENAI_API_KEY": SECRET},
        {"db_password": "hunter2-long", "Auth_Token": "tok-999999", "MODE": "on", "TOKEN_X": "1"}]


def test_secret_values_by_name() -> None:
    values = secret_values(ENVS)
    assert set(values) == {SECRET, "hunter2-long", "tok-999999"}  # "1" is too short to replace
    assert "http://toxiproxy:20000" not in values


@pytest.mark.parametrize("text, expected", [
    ("OPENAI_API_KEY: sk-abc", f"OPENAI_API_KEY: {MASK}"),
    ("  env: {API_KEY: abc, MODE: on}", f"  env: {{API_KEY: {MASK}, MODE: on}}"),
    ('{"db_password": "xyz", "mode": "on"}', f'{{"db_password": "{MASK}", "mode": "on"}}'),
    ("chaos run x.yaml --set services.gateway.env.API_TOKEN=abc",
     f"chaos run x.yaml --set services.gateway.env.API_TOKEN={MASK}"),
    ("secret='quoted value'", f"secret='{MASK}'"),
    ("nothing to see: here", "nothing to see: here"),
])
def test_mask_by_name(text: str, expected: str) -> None:
    assert Masker().text(text) == expected


def test_mask_by_value_anywhere() -> None:
    masker = Masker(secret_values(ENVS))
    line = f"INFO calling https://api.example/v1?k={SECRET} with header Bearer tok-999999"
    out = masker.text(line)
    assert SECRET not in out and "tok-999999" not in out and out.count(MASK) == 2


def test_every_output_is_masked(tmp_path: Path) -> None:
    masker = Masker(secret_values(ENVS))
    result = hand_built()
    result.scenario_yaml = f"services:\n  gateway:\n    env:\n      OPENAI_API_KEY: {SECRET}\n"
    result.command = f"chaos run s.yaml --set services.gateway.env.OPENAI_API_KEY={SECRET}"
    result.logs = {"gateway": f"2024 config api_key={SECRET}\n2024 using {SECRET}"}
    result.faults[0].logs = {"gateway": f"token: {SECRET}"}
    result.error = f"gateway died: OPENAI_API_KEY={SECRET}"
    result.assertions[1].message = f"saw {SECRET}"
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "gateway.log").write_text(f"line with {SECRET}\nPASSWORD=hunter2-long\n")
    (run_dir / "events.ndjson").write_text(f'{{"message": "{SECRET}"}}\n')
    (run_dir / "load.json").write_text(f'{{"headers": {{"Authorization": "Bearer {SECRET}"}}}}\n')
    paths = write_reports(masker.apply(result), run_dir, masker=masker)
    for path in [*paths.values(), *run_dir.rglob("*.log"), *run_dir.glob("*.ndjson"),
                 run_dir / "load.json"]:
        text = path.read_text()
        assert SECRET not in text and "hunter2-long" not in text, path.name
    html = paths["html"].read_text()
    assert f"OPENAI_API_KEY: {MASK}" in html and "--set services.gateway.env.OPENAI_API_KEY=****" in html


def test_console_and_event_stream_are_masked() -> None:
    masker = Masker([SECRET])
    stream = io.StringIO()
    listen = masked(ConsoleProgress(stream=stream), masker)
    listen(LoadWarning(text=f"load with key {SECRET}"))
    listen(FaultInjected(phase="fault", description=f"header x-api-key={SECRET}"))
    out = stream.getvalue()
    assert SECRET not in out and out.count(MASK) == 2


def test_masking_leaves_a_result_intact() -> None:
    result = hand_built()
    copy = Masker([SECRET]).apply(result)
    assert copy == result and copy is not result
    assert copy.breaker == result.breaker and isinstance(copy.breaker[0], tuple)


@pytest.mark.parametrize(("line", "expected"), [
    ("auth token=abc,def accepted", "auth token=**** accepted"),
    ("DB_PASSWORD: hunter2}{x", "DB_PASSWORD: ****"),
    ("upstream 502 after 3 attempts", "upstream 502 after 3 attempts"),
])
def test_log_lines_mask_a_value_up_to_whitespace(line: str, expected: str) -> None:
    assert Masker().log(line) == expected


def test_log_files_in_a_run_folder_are_masked_as_logs(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("12:00 start api_key=k1,k2 ok\n", encoding="utf-8")
    Masker().file(log)
    assert log.read_text(encoding="utf-8") == "12:00 start api_key=**** ok\n"
