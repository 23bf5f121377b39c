"""`ss -tan` snapshots: one line per interval per service, counts per TCP state.

The sidecar writes `<epoch> ESTAB=3 TIME-WAIT=12 ...`; this turns it into NDJSON rows
(`{"t": seconds since the first phase, "service": ..., "states": {...}}`) for the run
folder and the report's socket-state chart. A leak (CLOSE-WAIT climbing) or pool churn
(TIME-WAIT piling up) shows as a line that does not come back down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATES = ("ESTAB", "TIME-WAIT", "CLOSE-WAIT", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1",
          "FIN-WAIT-2", "LAST-ACK", "CLOSING", "LISTEN")


def parse_ss_lines(text: str, service: str, t0: float) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        states: dict[str, int] = {}
        for item in parts[1:]:
            name, _, count = item.partition("=")
            if count.isdigit():
                states[name.upper()] = states.get(name.upper(), 0) + int(count)
        rows.append({"t": round(t - t0, 3), "service": service, "states": states})
    return rows


def collect(folder: Path, services: list[str], t0: float) -> list[dict[str, Any]]:
    """All services' snapshots, written to folder/sockets.ndjson as well."""
    rows: list[dict[str, Any]] = []
    for service in services:
        path = folder / service / "ss.txt"
        if path.is_file():
            rows.extend(parse_ss_lines(path.read_text(errors="replace"), service, t0))
    rows.sort(key=lambda r: (r["service"], r["t"]))
    with (folder / "sockets.ndjson").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return rows
