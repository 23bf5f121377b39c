"""result.json: its published JSON Schema, kept in step with the dataclasses, and round trips."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from chaos.report.schema import result_schema
from chaos.report.writer import ReportInputError, load_result, result_json, write_reports
from chaos.verdict.result import Result
from tests.fixtures.report_cases import RUNS, hand_built

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "result.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_published_schema_matches_the_dataclasses() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == result_schema(), (
        "schemas/result.schema.json is stale: regenerate it with "
        "`.venv/bin/python -m chaos.report.schema > schemas/result.schema.json`")


@pytest.mark.parametrize("run", ["pass", "fail"])
def test_recorded_result_json_is_valid(validator: jsonschema.Draft202012Validator, run: str) -> None:
    data = json.loads((RUNS / run / "result.json").read_text())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert data["schema_version"] == 1


@pytest.mark.parametrize("status", ["pass", "fail", "inconclusive"])
def test_written_result_json_is_valid(tmp_path: Path, validator: jsonschema.Draft202012Validator,
                                      status: str) -> None:
    paths = write_reports(hand_built(status=status), tmp_path / "run")
    data = json.loads(paths["json"].read_text())
    errors = list(validator.iter_errors(data))
    assert not errors, [e.message for e in errors[:5]]
    assert data["score"] is not None and data["breaker_transitions"]


def test_schema_rejects_what_it_should(validator: jsonschema.Draft202012Validator) -> None:
    data = json.loads((RUNS / "fail" / "result.json").read_text())
    for key, value in (("verdict", "maybe"), ("schema_version", 2), ("score", 140),
                       ("unknown_field", 1)):
        broken = dict(data, **{key: value})
        assert list(validator.iter_errors(broken)), key


@pytest.mark.parametrize("run", ["pass", "fail"])
def test_result_json_round_trips(run: str) -> None:
    result = load_result(RUNS / run)
    assert isinstance(result, Result)
    again = json.loads(result_json(result))
    assert again == json.loads((RUNS / run / "result.json").read_text())


def test_load_result_rejects_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "result.json"
    for text in ("not json", "[]", json.dumps({"scenario": "x", "verdict": "pass",
                                                "schema_version": 99})):
        bad.write_text(text)
        with pytest.raises(ReportInputError):
            load_result(bad)
    with pytest.raises(ReportInputError):
        load_result(tmp_path / "missing.json")
