"""The committed JSON Schema is exactly what `chaos schema` generates, and it accepts the library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaos.scenario.schema import scenario_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "scenario.schema.json"
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_committed_schema_equals_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "schemas/scenario.schema.json is stale: run `make schema`")


def test_chaos_schema_prints_it() -> None:
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "schema"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == scenario_schema()


def test_schema_describes_durations_and_bounds_as_written_in_yaml() -> None:
    defs = scenario_schema()["$defs"]
    duration = defs["Phase"]["properties"]["duration"]
    assert {"string", "number"} <= {alt["type"] for alt in duration["anyOf"]}
    p95 = json.dumps(defs["Assertion"]["properties"]["p95"])
    assert "Comparison" not in p95 and '"string"' in p95
    assert defs["Service"]["additionalProperties"] is False
    assert "depends_on" in defs["Service"]["properties"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_are_valid_against_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, scenario_schema())


def test_schema_rejects_an_unknown_key() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load(SHIPPED[0].read_text(encoding="utf-8"))
    data["phases"][0]["durration"] = "1s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, scenario_schema())
