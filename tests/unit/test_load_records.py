"""The locustfile's record writer (chaos.load.records), without Locust: what lands in the
records, dropped and status files the harness reads back."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.load.records import RecordWriter


def _writer(tmp_path: Path, forward: bool = False) -> RecordWriter:
    (tmp_path / "phases").write_text("100.0\tbaseline\n110.0\tfault\n")
    config = {"records": str(tmp_path / "records.ndjson"), "phase_file": str(tmp_path / "phases"),
              "dropped": str(tmp_path / "dropped.ndjson"), "status_dir": str(tmp_path / "status")}
    return RecordWriter(config, forward)


def _record(t: float, latency_ms: float, **extra: object) -> dict[str, object]:
    return {"t": t, "name": "GET /", "status": 200, "latency_ms": latency_ms, "bytes": 2,
            "outcome": "ok", "detail": "", **extra}


def test_a_request_belongs_to_the_phase_in_which_it_ended(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.pending += [_record(99.0, 10.0), _record(109.5, 600.0, sched=109.4),
                       _record(111.0, 1.0, conn=[None, 5000, "127.0.0.1", 80], tls_ms=3.25)]
    writer.flush()
    rows = [json.loads(line) for line in (tmp_path / "records.ndjson").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["warmup", "fault", "fault"]
    assert rows[1]["sched"] == 109.4 and "conn" not in rows[1] and "tls_ms" not in rows[1]
    assert rows[2]["conn"] == [None, 5000, "127.0.0.1", 80]
    assert rows[2]["tls_ms"] == 3.25  # load.tls: the handshake that opened its connection
    assert writer.pending == []


def test_dropped_arrivals_and_the_status_file(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.dropped += [1.5, 2.5]
    writer.counts["dropped"] = 2
    writer.flush_dropped()
    writer.write_status()
    assert (tmp_path / "dropped.ndjson").read_text() == '{"t":1.5}\n{"t":2.5}\n'
    (status,) = (tmp_path / "status").iterdir()
    assert json.loads(status.read_text())["dropped"] == 2


def test_forward_mode_writes_nothing_here(tmp_path: Path) -> None:
    writer = _writer(tmp_path, forward=True)
    writer.pending.append(_record(101.0, 1.0))
    writer.dropped.append(1.0)
    writer.flush()
    writer.flush_dropped()
    assert not (tmp_path / "records.ndjson").exists() and not (tmp_path / "dropped.ndjson").exists()
    assert len(writer.pending) == 1  # the worker report carries them to the master
