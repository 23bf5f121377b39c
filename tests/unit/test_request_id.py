"""load.request_id (issue 18): the id every client request carries, as a user writes it.

Validation through `chaos validate` (exit 2, file:line: key: message, no traceback); the
record writer's lines with the new fields; reading them back (old files still load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.load.records import RecordWriter
from chaos.scenario.loader import load_scenario
from chaos.verdict.stats import read_records
from tests.fixtures.scenarios import MINIMAL

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("chaos")
CHAOS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "chaos.cli"]
CHAT = """\
    - name: chat
      method: POST
      path: /v1/chat/completions
      json:
        model: m
        user: {user}
"""


def _scenario(tmp_path: Path, request_id: str, user: str = "alice") -> Path:
    text = MINIMAL.replace("  requests:\n", f"  request_id: {request_id}\n  requests:\n", 1)
    text = text.replace("    - {name: get, path: /}\n",
                        "    - {name: get, path: /}\n" + CHAT.format(user=user), 1)
    path = tmp_path / "rid.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-docker-here.sock")
    return subprocess.run([*CHAOS, "validate", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _line_of(path: Path, needle: str) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, hits
    return hits[0]


def test_the_default_is_a_header_and_no_body_field(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    spec = load_scenario(path).load.request_id
    assert (spec.enabled, spec.header, spec.body_field) == (True, "X-Chaos-Request-Id", None)


def test_a_body_field_on_objects_validates(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "{header: X-Req, body_field: metadata.chaos_id}")
    proc = _validate(path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_scenario(path).load.request_id.body_field == "metadata.chaos_id"


@pytest.mark.parametrize(("request_id", "user", "needle", "key", "words"), [
    ("{body_field: user.id}", "5", "user: 5", "load.requests[1].json.user",
     "needs user to be an object, not a number"),
    ("{body_field: user}", "{name: x}", "user: {name: x}", "load.requests[1].json.user",
     "would replace this object"),
    ("{body_field: 'user..id'}", "x", "request_id:", "load.request_id.body_field",
     "expected a dot path of JSON keys"),
    ("{header: 'X Bad'}", "x", "request_id:", "load.request_id.header", "pattern"),
], ids=["non-object-on-path", "replaces-an-object", "malformed-path", "bad-header"])
def test_a_bad_request_id_exits_2_naming_file_line_and_key(
        tmp_path: Path, request_id: str, user: str, needle: str, key: str, words: str) -> None:
    path = _scenario(tmp_path, request_id, user)
    proc = _validate(path, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{path}:{_line_of(path, needle)}: {key}: "), proc.stderr
    assert words in proc.stderr


def test_a_json_body_that_is_not_an_object_exits_2(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "{body_field: user}")
    path.write_text(path.read_text().replace("      json:\n        model: m\n        user: alice\n",
                                             "      json: [1, 2]\n"), encoding="utf-8")
    proc = _validate(path, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{path}:{_line_of(path, 'json: [1, 2]')}: "
                                  "load.requests[1].json: "), proc.stderr
    assert "needs the JSON body to be an object, not a list" in proc.stderr


# ---------------------------------------------------------------- the records


def _writer(tmp_path: Path) -> RecordWriter:
    (tmp_path / "phases").write_text("100.0\tbaseline\n")
    return RecordWriter({"records": str(tmp_path / "records.ndjson"),
                         "phase_file": str(tmp_path / "phases")}, False)


def _record(**extra: object) -> dict[str, object]:
    return {"t": 101.0, "name": "chat", "status": 200, "latency_ms": 3.0, "bytes": 2,
            "outcome": "ok", "detail": "", **extra}


def test_records_carry_rid_method_and_the_gateways_retry_count(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    rid = "0123456789abcdef0123456789abcdef"
    writer.pending += [_record(rid=rid, method="POST", hdr_retries=2),
                       _record(rid=None, method="GET"), _record()]
    writer.flush()
    lines = (tmp_path / "records.ndjson").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert (rows[0]["rid"], rows[0]["method"], rows[0]["hdr_retries"]) == (rid, "POST", 2)
    assert rows[1]["method"] == "GET" and "rid" not in rows[1] and "hdr_retries" not in rows[1]
    assert "method" not in rows[2]
    read = list(read_records(tmp_path / "records.ndjson", 100.0))
    assert (read[0].rid, read[0].method, read[0].hdr_retries) == (rid, "POST", 2)
    assert (read[2].rid, read[2].method, read[2].hdr_retries) == (None, None, None)


def test_old_records_without_the_fields_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.ndjson"
    path.write_text('{"t":101.0,"phase":"baseline","name":"get","status":200,"latency_ms":1.0,'
                    '"bytes":2,"outcome":"ok","detail":""}\n')
    (record,) = read_records(path, 100.0)
    assert record.outcome == "ok" and record.rid is None and record.hdr_retries is None


def test_each_request_gets_a_fresh_id_in_the_header_and_a_copied_body() -> None:
    from chaos.load.request_ids import RequestIds

    spec = {"model": "m", "metadata": {"team": "a"}, "messages": [{"role": "user"}]}
    ids = RequestIds({"enabled": True, "header": "X-Req", "body_field": "metadata.chaos_id"})
    first, second = {}, {}
    rid1, body1 = ids.stamp(first, spec)
    rid2, body2 = ids.stamp(second, spec)
    assert rid1 != rid2 and len(rid1 or "") == 32 and int(rid1 or "", 16) >= 0
    assert first == {"X-Req": rid1} and body1["metadata"] == {"team": "a", "chaos_id": rid1}
    assert body2["metadata"]["chaos_id"] == rid2
    assert spec == {"model": "m", "metadata": {"team": "a"}, "messages": [{"role": "user"}]}
    assert RequestIds({"enabled": False}).stamp({}, spec) == (None, spec)
