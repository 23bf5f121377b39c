"""What the reports add to a Result: the versions that explain it, and each fault's log lines.

The figures derived from a Result (score, breaker transitions, retry amplification, expected
errors) live in chaos.verdict.derived; they are re-exported here for the report's templates
and older importers.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import re
from pathlib import Path

from chaos.verdict.derived import (
    RECOVERY_DEFINITION,
    RETRY_DEFINITION,
    SCORE_FORMULA,
    WEIGHTS,
    breaker_transitions,
    enrich,
    expected_error_phases,
    expected_errors,
    failing_second,
    phase_at,
    resilience_score,
    retry_amplification,
    score_terms,
    scored_phases,
    state_name,
)
from chaos.verdict.result import FaultRecord

__all__ = [
    "RECOVERY_DEFINITION", "RETRY_DEFINITION", "SCORE_FORMULA", "WEIGHTS", "attach_fault_logs",
    "breaker_transitions", "enrich", "environment", "expected_error_phases", "expected_errors",
    "failing_second", "phase_at", "resilience_score", "retry_amplification", "score_terms",
    "scored_phases", "state_name",
]


# -- environment -------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(docker_version: str | None = None) -> dict[str, str]:
    """Versions that explain a result: the harness, Python, Locust and the Docker engine."""
    if docker_version is None:
        docker_version = _docker_version()
    return {
        "gateway-chaos": _version("gateway-chaos"),
        "python": platform.python_version(),
        "locust": _version("locust"),
        "docker engine": docker_version,
        "platform": platform.platform(terse=True),
    }


def _docker_version() -> str:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return str(client.version().get("Version", "unknown"))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - a report must not fail over a version string
        return "unavailable"


# -- container logs around each fault ----------------------------------------------------
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\s?")


def _epoch(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    base = dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.UTC).timestamp()
    return base + float("0" + (match.group(2) or ".0")[:10])


def attach_fault_logs(faults: list[FaultRecord], log_dir: Path, t0: float, before: int = 8,
                      after: int = 12) -> None:
    """Give each fault the log lines each service wrote just before and after it started.

    Read from the whole logs the run saved (docker timestamps each line), so that taking
    them costs the phases nothing and includes what happened after the fault as well.
    """
    if not log_dir.is_dir():
        return
    logs = {}
    for path in sorted(log_dir.glob("*.log")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        logs[path.stem] = [(_epoch(line), line) for line in lines]
    for fault in faults:
        if fault.logs:
            continue
        at = t0 + fault.start
        for service, stamped in logs.items():
            earlier = [line for t, line in stamped if t is not None and t < at][-before:]
            later = [line for t, line in stamped if t is not None and t >= at][:after]
            if not earlier and not later:
                continue
            marker = f"---- {fault.start:.1f}s: {fault.description} ----"
            fault.logs[service] = "\n".join([*earlier, marker, *later])
