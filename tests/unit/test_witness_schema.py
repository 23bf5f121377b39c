"""result.json's witness findings are typed in its schema: a run's findings validate, and a
file with a figure the report cannot draw is refused naming the key (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from chaos.cli import main
from chaos.report.schema import result_schema
from chaos.report.writer import write_reports
from chaos.verdict.evaluate import Evidence
from chaos.verdict.result import Result
from chaos.witness.analysis import analyse, store
from tests.fixtures.report_cases import hand_built
from tests.fixtures.witness_files import ONE_PHASE, T0, attempt, client, write


def _witnessed(tmp_path: Path) -> Result:
    requests, upstream = write(tmp_path, [client("a", 1.0), client("b", 2.0, "graceful_error")],
                               [attempt("a", 1.0, status=502), attempt("a", 1.1),
                                attempt("b", 2.0, took=1.0, status=None, ended="gateway_rst")])
    found = analyse(requests, upstream, T0, ONE_PHASE, ())
    result = hand_built(status="pass")
    result.witness = {"kind": "tap", "sources": ["tap:backend"], "attempts": 3}
    store(result, found)
    assert Evidence([], ONE_PHASE, [], witness=found).witness is found
    return result


def test_a_runs_findings_validate(tmp_path: Path) -> None:
    data = json.loads(write_reports(_witnessed(tmp_path), tmp_path / "run")["json"].read_text())
    errors = list(jsonschema.Draft202012Validator(result_schema()).iter_errors(data))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert data["mechanisms"]["whole"]["ok_after_retry"] == 1


@pytest.mark.parametrize(("path", "value", "named"), [
    (("mechanisms", "whole", "shed_share"), 5, "mechanisms.whole.shed_share"),
    (("mechanisms", "by_phase", "fault", "requests"), "many", "mechanisms.by_phase.fault.requests"),
    (("breaker_inferred", 0, "start"), "soon", "breaker_inferred[0].start"),
])
def test_a_figure_the_report_cannot_draw_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     path: tuple, value: object, named: str) -> None:
    data = json.loads(write_reports(_witnessed(tmp_path), tmp_path / "run")["json"].read_text())
    data["breaker_inferred"] = [{"start": 1.0, "end": 2.0, "closed_at": None, "probes": [],
                                 "phase": "fault"}]
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    bad = tmp_path / "result.json"
    bad.write_text(json.dumps(data))
    assert main(["report", str(bad)]) == 2
    assert named in capsys.readouterr().err
