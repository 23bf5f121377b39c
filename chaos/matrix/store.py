"""matrix.json: the typed record of a matrix, written atomically after every cell.

The models are pydantic so the published schema (schemas/matrix.schema.json, from
`python -m chaos.matrix.store`) is generated from the same classes that write the file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chaos.errors import ScenarioError

SCHEMA_VERSION = 1
Verdict = Literal["pass", "fail", "inconclusive", "error", "n/a"]
FINISHED = ("pass", "fail", "inconclusive")  # a cell with one of these and its hash is kept
KEPT = (*FINISHED, "n/a")  # n/a: the gateway cannot carry the scenario's load (error says why)
SCORE_DEFINITION = (
    "Resilience score: the mean of the run scores (0-100, each run's own score in its "
    "report) of the profile's cells that reached a verdict (pass, fail or inconclusive); "
    "cells that ended in error are not counted, and the number of cells counted is shown "
    "beside the score.")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FirstFailure(_Model):
    """The first assertion that did not hold, in the witness's or the judge's words."""

    phase: str
    kind: str
    observed: str
    bound: str
    status: Literal["fail", "inconclusive"]
    message: str


class CellRecord(_Model):
    """One scenario on one gateway profile: how its `chaos run` ended."""

    scenario: str = Field(description="the scenario file's stem: the row")
    file: str
    gateway: str = Field(description="NAME:PROFILE: the column")
    verdict: Verdict
    exit_code: int | None = Field(description="the run's exit code; null when it was timed out "
                                  "or could not start")
    error: str | None = None
    first_failure: FirstFailure | None = None
    score: int | None = Field(None, ge=0, le=100)
    report: str | None = Field(None, description="report.html, relative to matrix.json")
    duration_s: float = Field(ge=0)
    gateway_version: str | None = Field(None, description='result.environment["gateway"]')
    images: dict[str, str] = Field(default_factory=dict, description="result.images")
    inputs: str = Field(description="sha256 of the scenario bytes, the profile folder's bytes, "
                        "the harness version and source hash, and the --set args")
    finished_at: str


class ColumnRecord(_Model):
    """One gateway profile: the exact versions that ran and how its cells ended."""

    gateway: str
    version: str | None = Field(description='result.environment["gateway"] of its latest run')
    images: dict[str, str] = Field(default_factory=dict)
    passed: int = Field(ge=0)
    failed: int = Field(ge=0)
    inconclusive: int = Field(ge=0)
    errors: int = Field(ge=0)
    score: float | None = Field(description="the resilience score (see score_definition)")
    scored_cells: int = Field(ge=0)


class Matrix(_Model):
    """reports/matrix-<id>/matrix.json."""

    schema_version: int = SCHEMA_VERSION
    id: str
    harness: str = Field(description="harness version + source hash")
    started_at: str
    updated_at: str
    sets: list[str] = Field(default_factory=list)
    scenarios: list[str] = Field(description="rows, in order")
    gateways: list[str] = Field(description="columns, in order")
    cells: list[CellRecord] = Field(default_factory=list)
    columns: list[ColumnRecord] = Field(default_factory=list)
    score_definition: str = SCORE_DEFINITION

    def cell(self, scenario: str, gateway: str) -> CellRecord | None:
        return next((c for c in self.cells if c.scenario == scenario and c.gateway == gateway),
                    None)

    def done(self, scenario: str, gateway: str, inputs: str) -> bool:
        """A finished cell with the same inputs: not run again."""
        cell = self.cell(scenario, gateway)
        return cell is not None and cell.inputs == inputs and cell.verdict in KEPT

    def put(self, record: CellRecord) -> None:
        self.cells = [c for c in self.cells if (c.scenario, c.gateway) !=
                      (record.scenario, record.gateway)] + [record]


def resilience_score(cells: list[CellRecord]) -> tuple[float | None, int]:
    """The one definition (SCORE_DEFINITION): (mean score of the scored cells, their count)."""
    scores = [c.score for c in cells if c.verdict in FINISHED and c.score is not None]
    return (round(sum(scores) / len(scores), 1) if scores else None), len(scores)


def refresh_columns(matrix: Matrix) -> None:
    """Per column: counts by verdict, the resilience score, the versions its latest run saw."""
    matrix.columns = []
    for gateway in matrix.gateways:
        cells = [c for c in matrix.cells if c.gateway == gateway and c.scenario in matrix.scenarios]
        seen = sorted((c for c in cells if c.gateway_version or c.images),
                      key=lambda c: c.finished_at)
        score, counted = resilience_score(cells)
        matrix.columns.append(ColumnRecord(
            gateway=gateway, version=seen[-1].gateway_version if seen else None,
            images=seen[-1].images if seen else {},
            passed=sum(c.verdict == "pass" for c in cells),
            failed=sum(c.verdict == "fail" for c in cells),
            inconclusive=sum(c.verdict == "inconclusive" for c in cells),
            errors=sum(c.verdict == "error" for c in cells), score=score, scored_cells=counted))


def load(path: Path) -> Matrix:
    """Read a matrix.json; a broken one is bad input naming the file (exit 2)."""
    try:
        return Matrix.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", str(path)) from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"not JSON: {exc.msg}", str(path), line=exc.lineno) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(first["msg"], str(path), key=key) from exc


def save(matrix: Matrix, path: Path) -> None:
    """Write via a temporary file and rename: a reader (or a Ctrl-C) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".matrix-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(matrix.model_dump_json(indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def schema_text() -> str:
    schema = Matrix.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": "https://gateway-chaos.invalid/schemas/matrix.schema.json", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_text())
