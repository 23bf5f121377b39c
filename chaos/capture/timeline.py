"""One time axis for everything: phases, faults, outcome spikes, RST bursts, service logs.

The "what happened at 12.4 s" table of the report, and a few failed requests each shown
with what the gateway logged in the same second and, when captured, the packets of the
client↔gateway hop around it. Records carry no client port, so packets are matched by
time only (the request's start to its end, plus 50 ms): best effort, said so in the page.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.capture.analysis import CLIENT, CaptureAnalysis, hop_name
from chaos.verdict.result import FaultRecord, PhaseWindow

GOOD = ("ok", "ok_after_retry")
MAX_ROWS = 400
MAX_LOG_LINES_PER_SERVICE = 80
MAX_SAMPLES = 8
_TROUBLE = re.compile(r"(?i)\b[45]\d\d\b|error|reset|retr|fail|except|timeout|refused|broken")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\s?")


def stamped_lines(path: Path) -> list[tuple[float, str]]:
    """A saved service log (docker timestamps each line) as (epoch, text without the stamp)."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _STAMP.match(line)
        if not match:
            continue
        base = dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.UTC).timestamp()
        out.append((base + float("0" + (match.group(2) or ".0")[:10]), line[match.end():]))
    return out


def read_logs(log_dir: Path) -> dict[str, list[tuple[float, str]]]:
    if not log_dir.is_dir():
        return {}
    return {p.stem: stamped_lines(p) for p in sorted(log_dir.glob("*.log"))}


def read_failures(records: Path, t0: float) -> list[dict[str, Any]]:
    failed: list[dict[str, Any]] = []
    if not records.is_file():
        return failed
    with records.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("outcome") not in GOOD:
                row["t_rel"] = round(float(row["t"]) - t0, 3)
                failed.append(row)
    failed.sort(key=lambda r: r["t_rel"])
    return failed


def _interesting(t: float, marks: list[float], margin: float = 1.5) -> bool:
    return any(abs(t - m) <= margin for m in marks)


def events(windows: list[PhaseWindow], faults: list[FaultRecord], timeline: list[dict[str, Any]],
           logs: dict[str, list[tuple[float, str]]], t0: float,
           capture: CaptureAnalysis | None) -> tuple[list[dict[str, Any]], bool]:
    """Rows {t, source, kind, text} sorted by t; True when rows were cut to MAX_ROWS."""
    rows: list[dict[str, Any]] = []
    for w in windows:
        rows.append({"t": w.start, "source": "harness", "kind": "phase", "text": f"phase {w.name} starts"})
    marks: list[float] = []
    for f in faults:
        rows.append({"t": f.start, "source": "harness", "kind": "fault",
                     "text": f"fault on: {f.description}"})
        marks.append(f.start)
        if f.end is not None:
            rows.append({"t": f.end, "source": "harness", "kind": "fault",
                         "text": f"fault off: {f.description}"})
            marks.append(f.end)
    for row in timeline:
        bad = {k: v for k, v in row.items() if k not in ("t", "total", *GOOD)
               and not k.startswith("p") and isinstance(v, int | float) and v}
        if bad:
            text = ", ".join(f"{v:g} {k}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1]))
            rows.append({"t": float(row["t"]), "source": "client", "kind": "outcome",
                         "text": f"{text} (of {row.get('total', 0)} requests in this second)"})
            marks.append(float(row["t"]))
    if capture is not None:
        per: Counter[tuple[int, str]] = Counter()
        for r in capture.rsts:
            per[(math.floor(r.t), f"{r.sender}→{r.receiver}")] += 1
        for (second, pair), count in sorted(per.items()):
            rows.append({"t": float(second), "source": "capture", "kind": "rst",
                         "text": f"{count} RST {pair}"})
    end = max([w.end for w in windows] + [0.0])
    for service, lines in logs.items():
        inside = [(t - t0, text) for t, text in lines if -2 <= t - t0 <= end + 2]
        near = [item for item in inside if _interesting(item[0], marks)]
        chosen = near[:MAX_LOG_LINES_PER_SERVICE] if len(inside) > MAX_LOG_LINES_PER_SERVICE else inside
        for t, text in chosen:
            rows.append({"t": round(t, 3), "source": service, "kind": "log", "text": text[:300]})
    rows.sort(key=lambda r: (r["t"], r["kind"] != "fault"))
    return rows[:MAX_ROWS], len(rows) > MAX_ROWS


def samples(failures: list[dict[str, Any]], logs: dict[str, list[tuple[float, str]]], t0: float,
            target: str, capture: CaptureAnalysis | None) -> list[dict[str, Any]]:
    """A few failed requests (one per outcome first, then spread over the run), with context."""
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in failures:
        if row["outcome"] not in seen:
            seen.add(row["outcome"])
            picked.append(row)
    step = max(1, len(failures) // MAX_SAMPLES)
    for row in failures[::step]:
        if len(picked) >= MAX_SAMPLES:
            break
        if row not in picked:
            picked.append(row)
    hop = hop_name(CLIENT, target, target)
    out = []
    for row in sorted(picked[:MAX_SAMPLES], key=lambda r: r["t_rel"]):
        start = row["t_rel"]
        end = start + float(row.get("latency_ms") or 0) / 1000
        second = math.floor(end)
        same = [(t - t0, text[:300]) for t, text in logs.get(target, [])
                if second <= t - t0 < second + 1]
        # lines that look like trouble first, then the ones closest to the request's end
        same.sort(key=lambda item: (not _TROUBLE.search(item[1]), abs(item[0] - end)))
        gateway = [text for _, text in same[:10]]
        packets: list[str] = []
        if capture is not None:
            for name, hop_packets in capture.packets.items():
                for t, p in hop_packets:
                    if start - 0.05 <= t <= end + 0.05 and (p.rst or (name == hop and (p.fin or p.syn))):
                        packets.append(f"{t:.3f}s {name} {p.src}:{p.sport} → {p.dst}:{p.dport} "
                                       f"[{p.flag_text()}]")
            packets = sorted(packets, key=lambda line: float(line.split("s ", 1)[0]))[:16]
        out.append({"t": round(end, 3), "outcome": row["outcome"], "detail": str(row.get("detail", ""))[:300],
                    "status": row.get("status"), "latency_ms": row.get("latency_ms"),
                    "name": row.get("name"), "gateway_logs": gateway, "packets": packets})
    return out
