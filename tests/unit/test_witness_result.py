"""result.witness in result.json: what the poller summed up is written, read back, and held
to its schema (a `chaos report` of a file with a witness of an unknown kind is refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.report.writer import ReportInputError, load_result, result_json
from tests.fixtures.report_cases import RUNS

WITNESS = {"kind": "journal", "sources": ["journal:backend"], "attempts": 120, "dropped": 0,
           "connections": {"http": 0, "tls": 0, "unknown": 0},
           "note": "a real Toxiproxy server has no tap: the witness is the backend journal",
           "matched": 118, "unmatched": 0, "no_id": 2}


def _with_witness(tmp_path: Path, witness: object) -> Path:
    data = json.loads((RUNS / "pass" / "result.json").read_text())
    data["witness"] = witness
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    return path


def test_a_witness_round_trips(tmp_path: Path) -> None:
    result = load_result(_with_witness(tmp_path, WITNESS))
    assert result.witness == WITNESS
    assert json.loads(result_json(result))["witness"] == WITNESS


@pytest.mark.parametrize(("witness", "where"), [
    ({**WITNESS, "kind": "guess"}, "witness.kind"),
    ({**WITNESS, "attempts": -1}, "witness.attempts"),
    ({**WITNESS, "sources": "journal:backend"}, "witness.sources"),
], ids=["unknown-kind", "negative-count", "sources-not-a-list"])
def test_a_bad_witness_is_refused(tmp_path: Path, witness: object, where: str) -> None:
    path = _with_witness(tmp_path, witness)
    with pytest.raises(ReportInputError) as caught:
        load_result(path)
    assert f"{path}: {where}" in str(caught.value)
