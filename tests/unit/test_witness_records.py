"""upstream.ndjson read back as Attempt records (contract section 2)."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.witness.records import read_attempts


def test_attempts_read_back_torn_line_skipped(tmp_path: Path) -> None:
    path = tmp_path / "upstream.ndjson"
    first = {"seq": 1, "conn": "backend#1", "rid": "a" * 32, "method": "GET", "path": "/x",
             "t": 100.0, "first_byte": 100.1, "end": 100.2, "status": 200,
             "ended": "complete", "retry_after": None, "events": 0, "source": "tap:backend"}
    second = {**first, "seq": 2, "rid": None, "status": None, "ended": "gateway_rst",
              "first_byte": None}
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n" + '{"seq": 3, "t"',
                    encoding="utf-8")
    attempts = list(read_attempts(path))
    assert [a.seq for a in attempts] == [1, 2]
    assert attempts[0].succeeded and attempts[0].source == "tap:backend"
    assert attempts[1].rid is None and attempts[1].abandoned and not attempts[1].succeeded


def test_missing_file_gives_no_attempts(tmp_path: Path) -> None:
    assert list(read_attempts(tmp_path / "upstream.ndjson")) == []


def test_a_line_that_is_not_an_object_is_skipped_like_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "upstream.ndjson"
    good = {"seq": 1, "conn": "backend#1", "t": 10.0, "ended": "complete", "status": 200}
    path.write_text("[1, 2]\n" + json.dumps(good) + "\n", encoding="utf-8")
    assert [a.seq for a in read_attempts(path)] == [1]
