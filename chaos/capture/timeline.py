"""One time axis for everything: phases, faults, outcome spikes, RST bursts, service logs.

The "what happened at 12.4 s" table of the report, and a few failed requests each shown
with what the gateway logged in the same second and, when captured, the packets of its
own TCP connection: the locustfile records each request's 4-tuple (chaos.load.connections),
and the capture is searched for exactly that connection while the request ran
(`match: "connection"`). A record without a client port (an older run, or a failure before
any socket existed) falls back to packets matched by time (`match: "time window"`); the
sample says which, and so does the page.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.capture.analysis import CLIENT, CaptureAnalysis, hop_name
from chaos.capture.pcap import ACK, Packet
from chaos.outcomes import SUCCESS
from chaos.verdict.result import FaultRecord, PhaseWindow

GOOD = SUCCESS
MAX_ROWS = 400
MAX_LOG_LINES_PER_SERVICE = 80
MAX_SAMPLES = 8
MAX_PACKETS = 16
SLACK = 0.05  # seconds either side of a request's span when picking its packets
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
                     "text": f"{'restore' if f.kind == 'restore' else 'fault on'}: "
                             f"{f.description}"})
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
    """A few failed requests (one per outcome first, then spread over the run), with context:
    the gateway's log lines of that second and, with a capture, the packets of the request's
    own connection ("match": "connection") or, without a recorded client port, those of its
    time span ("match": "time window")."""
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
        conn = record_connection(row)
        sample: dict[str, Any] = {
            "t": round(end, 3), "outcome": row["outcome"], "detail": str(row.get("detail", ""))[:300],
            "status": row.get("status"), "latency_ms": row.get("latency_ms"), "name": row.get("name"),
            "gateway_logs": gateway,
            "connection": None if conn is None else {
                "local": _endpoint(conn[0], conn[1]), "remote": _endpoint(conn[2], conn[3]),
                "client_port": conn[1]},
            "match": None, "match_note": "", "packets": [], "nearby_rsts": [],
        }
        if capture is not None:
            sample.update(_packets(capture, conn, start, end, hop))
        out.append(sample)
    return out


def record_connection(row: dict[str, Any]) -> tuple[str | None, int, str, int] | None:
    """A record's "conn" ([local ip or null, local port, remote ip, remote port]), if usable."""
    conn = row.get("conn")
    if not isinstance(conn, list) or len(conn) != 4:
        return None
    try:
        local_ip, local_port, remote_ip, remote_port = conn
        if not int(local_port) or not remote_ip:
            return None
        return (str(local_ip) if local_ip else None, int(local_port), str(remote_ip), int(remote_port))
    except (TypeError, ValueError):
        return None


def _endpoint(ip: str | None, port: int) -> str:
    host = "*" if ip is None else f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}"


def _line(hop: str, t: float, p: Packet) -> str:
    size = f" {p.payload} B" if p.payload else ""
    return f"{t:.3f}s {hop} {p.src}:{p.sport} → {p.dst}:{p.dport} [{p.flag_text()}]{size}"


def _first_and_last(lines: list[str]) -> list[str]:
    """At most MAX_PACKETS lines, keeping the end: a connection's last packets (its FIN or
    RST) matter more than the middle of a long stream."""
    if len(lines) <= MAX_PACKETS:
        return lines
    head, tail = MAX_PACKETS // 3, MAX_PACKETS - MAX_PACKETS // 3 - 1
    return [*lines[:head], f"… {len(lines) - head - tail} more packets of this connection …",
            *lines[-tail:]]


def _packets(capture: CaptureAnalysis, conn: tuple[str | None, int, str, int] | None, start: float,
             end: float, hop: str) -> dict[str, Any]:
    """The sample's packets: its own connection's when the port is known, else by time."""
    low, high = start - SLACK, end + SLACK
    if conn is None:
        lines = []
        for name, hop_packets in capture.packets.items():
            for t, p in hop_packets:
                if low <= t <= high and (p.rst or (name == hop and (p.fin or p.syn))):
                    lines.append((t, _line(name, t, p)))
        lines.sort()
        return {"match": "time window", "packets": [text for _, text in lines[:MAX_PACKETS]],
                "match_note": "the load generator recorded no client port for this request, so "
                              f"packets are matched by time only (its start to its end, ±{SLACK * 1000:g} "
                              "ms): SYN/FIN/RST on the client hop, RSTs on every hop; packets of "
                              "neighbouring connections appear too."}
    whole = capture.connection(*conn)
    mine = [(name, t, p) for name, t, p in whole if low <= t <= high]
    where = f"{_endpoint(conn[0], conn[1])} → {_endpoint(conn[2], conn[3])}"
    if not whole:
        note = (f"no packet of this request's connection ({where}) is in the capture: it did not "
                "cross a captured interface (a target reached through a port published on the "
                "host shows the host's side only), or the ring buffer or time limit dropped it.")
    else:
        opened = [t for _, t, p in whole if p.syn and not p.flags & ACK and t <= high]
        note = f"packets of exactly this request's connection ({where}) while it ran"
        if opened and opened[-1] < low:
            note += f"; the connection was opened at {opened[-1]:.3f}s and reused (keep-alive)"
        note += "; pure ACKs are not kept."
        if not mine:
            note += " None fell inside the request's time span."
    ports = {(conn[1], conn[3]), (conn[3], conn[1])}
    first = bisect.bisect_left(capture.rsts, low, key=lambda r: r.t)
    target = hop.split("↔")[1]
    nearby: list[str] = []
    for r in capture.rsts[first:]:
        if r.t > high or len(nearby) >= MAX_PACKETS:
            break
        if not (CLIENT in (r.sender, r.receiver) and (r.sport, r.dport) in ports):
            nearby.append(f"{r.t:.3f}s {hop_name(r.sender, r.receiver, target)} "
                          f"RST {r.sender}:{r.sport} → {r.receiver}:{r.dport}")
    return {"match": "connection", "match_note": note,
            "packets": _first_and_last([_line(name, t, p) for name, t, p in mine]),
            "nearby_rsts": nearby}
