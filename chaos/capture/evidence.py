"""Put a run's evidence together after teardown: what goes into result.evidence.

Always: the one-axis timeline of phases, faults, outcome spikes and service logs, and a
few failed requests with context. With capture: per-hop SYN/FIN/RST counts, the RST
attribution, socket-state snapshots, the pcap files, and notes on every limit hit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.capture import analysis, sockets, timeline
from chaos.capture.sidecar import RING_FILES, Captured, Limits
from chaos.verdict.result import FaultRecord, PhaseWindow


def limit_notes(captured: Captured, limits: Limits, files: list[dict[str, Any]]) -> list[str]:
    notes = list(captured.notes)
    for name in captured.time_limited:
        notes.append(f"{name}: the capture stopped at its time limit (max_seconds "
                     f"{limits.max_seconds:g}); later packets are missing.")
    for name in captured.services:
        mine = [f for f in files if f.get("file", "").startswith(f"capture/{name}/")]
        size = sum(int(f.get("bytes", 0)) for f in mine)
        if len(mine) >= RING_FILES and size >= (RING_FILES - 1) * limits.file_mb * 1_000_000:
            notes.append(f"{name}: the ring buffer filled ({size / 1e6:.1f} MB of max_mb "
                         f"{limits.max_mb}); the oldest packets were overwritten.")
        if any(f.get("truncated") for f in mine):
            notes.append(f"{name}: a pcap file ends in a partial record (tcpdump was stopped "
                         "while writing); the packets before it are intact.")
    return notes


def build(run_dir: Path, t0: float, windows: list[PhaseWindow], faults: list[FaultRecord],
          rows: list[dict[str, Any]], target: str, names: dict[str, str],
          captured: Captured | None, limits: Limits | None,
          client_resets: int | None) -> tuple[dict[str, Any], analysis.CaptureAnalysis | None]:
    logs = timeline.read_logs(run_dir / "logs")
    found: analysis.CaptureAnalysis | None = None
    evidence: dict[str, Any] = {"capture": None}
    if captured is not None and limits is not None:
        packets, files = analysis.load_capture(captured.folder, captured.services)
        found = analysis.analyse(packets, names, t0, target, client_resets)
        found.files = files
        found.notes = limit_notes(captured, limits, files)
        socket_rows = sockets.collect(captured.folder, captured.services, t0)
        evidence["capture"] = {
            **found.to_dict(), "services": captured.services, "names": names,
            "limits": {"max_mb": limits.max_mb, "max_seconds": limits.max_seconds,
                       "ss_interval": limits.ss_interval},
        }
        evidence["sockets"] = socket_rows
    events, cut = timeline.events(windows, faults, rows, logs, t0, found)
    evidence["events"] = events
    evidence["events_cut"] = cut
    failures = timeline.read_failures(run_dir / "requests.ndjson", t0)
    evidence["failed_total"] = len(failures)
    evidence["samples"] = timeline.samples(failures, logs, t0, target, found)
    return evidence, found
