"""The "Seen from the upstream" section of report.html, as rows the template prints.

Reads the witness fields of a Result (witness, mechanisms, breaker_inferred,
attempt_timeline, drilldown, drilldown_omitted: contract sections 3 and 4) defensively: a
result.json written before they existed, or with some of them missing, renders without the
section (or without the missing table), never an error. Nothing is computed here that the
verdict did not already compute; this only formats.
"""

from __future__ import annotations

from typing import Any

from chaos.chart_frame import frame
from chaos.outcomes import OK_AFTER_RETRY
from chaos.report import upstream_chart
from chaos.verdict.result import Result

MAX_REQUESTS = 200  # drill-down rows shown (the verdict keeps at most 200 too)
MAX_ATTEMPTS = 10  # attempts shown under one request (a retry storm: the first ten)
KINDS = {"tap": "the harness's proxy tap (every HTTP/1.1 attempt on the proxied connections)",
         "journal": "the backend's request journal (only the attempts that reached the backend)",
         "none": "none"}


def section(result: Result) -> dict[str, Any] | None:
    if not upstream_chart.two_sided(result):
        return None
    return {"witness": _witness(result), "mechanisms": mechanism_rows(result),
            "breaker": breaker_rows(result), "seconds": _seconds(result),
            "requests": drilldown(result), "omitted": omitted(result),
            "legend": upstream_chart.legend(result), "seen": upstream_chart.seen(result),
            **_amplification(result)}


def _amplification(result: Result) -> dict[str, Any]:
    """Upstream attempts per client request as the witness counted them, for the figures
    the gateway's own request counter fills when the scenario probes one."""
    data = _dict(getattr(result, "mechanisms", None))
    by_phase = {str(k): _number(_dict(v).get("amplification"))
                for k, v in _dict(data.get("by_phase")).items()}
    return {"amplification": _number(_dict(data.get("whole")).get("amplification")),
            "phase_amplification": {k: v for k, v in by_phase.items() if v is not None}}


def omitted(result: Result) -> int:
    """Requests the drill-down does not show: left out by the verdict, or beyond MAX_REQUESTS."""
    items = getattr(result, "drilldown", None)
    extra = max(len(items) - MAX_REQUESTS, 0) if isinstance(items, list) else 0
    return _int(getattr(result, "drilldown_omitted", 0)) + extra


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _witness(result: Result) -> dict[str, Any]:
    data = upstream_chart.witness(result) or {}
    kind = str(data.get("kind") or "unknown")
    conns = _dict(data.get("connections"))
    tls, unknown = _int(conns.get("tls")), _int(conns.get("unknown"))
    counted_only = ""
    if tls or unknown:
        counted_only = (f"{tls} TLS and {unknown} unknown-protocol connection"
                        f"{'s' if tls + unknown != 1 else ''} were counted per connection only: "
                        "their requests could not be read, so they are in no figure below.")
    sources = data.get("sources")
    figures = [(k, _int(data.get(k))) for k in ("attempts", "matched", "unmatched", "no_id",
                                                "dropped") if k in data]
    return {"kind": kind, "meaning": KINDS.get(kind, kind), "note": str(data.get("note") or ""),
            "sources": [str(s) for s in sources] if isinstance(sources, list) else [], "figures": figures,
            "http": _int(conns.get("http")), "counted_only": counted_only}


def _seconds_text(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.2f}s"


def _mechanism(name: str, m: dict[str, Any]) -> dict[str, Any]:
    """One row of the mechanisms table, every cell already text."""
    ra = _dict(m.get("retry_after"))
    mean, share = _number(m.get("attempts_per_request")), _number(m.get("shed_share"))
    amplification = _number(m.get("amplification"))
    gap = _number(ra.get("min_gap_s"))
    return {
        "name": name, "requests": _int(m.get("requests")), "attempts": _int(m.get("attempts")),
        "mean": "n/a" if mean is None else f"{mean:.2f}", "max": _int(m.get("max_attempts")),
        "amplification": "n/a" if amplification is None else f"{amplification:.2f}×",
        "retried": _int(m.get("retried")), OK_AFTER_RETRY: _int(m.get(OK_AFTER_RETRY)),
        "non_idempotent": _int(m.get("non_idempotent_retries")),
        "abandoned": _int(m.get("abandoned")),
        "timeout": _seconds_text(m.get("upstream_timeout_s")),
        "timeout_max": _seconds_text(m.get("upstream_timeout_max_s")),
        "shed": _int(m.get("shed")), "shed_share": "n/a" if share is None else f"{100 * share:.1f}%",
        "hedged": _int(m.get("hedged")), "after_429": _int(ra.get("after_429")),
        "honoured": _int(ra.get("honoured")), "violations": _int(ra.get("violations")),
        "min_gap": "n/a" if gap is None else f"{gap:.2f}s",
    }


def mechanism_rows(result: Result) -> list[dict[str, Any]]:
    """Per phase in run order (phases the verdict did not list are skipped), then the run."""
    data = getattr(result, "mechanisms", None)
    if not isinstance(data, dict):
        return []
    by_phase = _dict(data.get("by_phase"))
    names = [w.name for w in result.phases if w.name in by_phase]
    names += [n for n in by_phase if n not in names]
    rows = [_mechanism(str(n), by_phase[n]) for n in names if isinstance(by_phase[n], dict)]
    if isinstance(data.get("whole"), dict):
        rows.append({**_mechanism("whole run", data["whole"]), "whole": True})
    return rows


def breaker_rows(result: Result) -> list[dict[str, Any]]:
    rows = []
    for item in upstream_chart.breaker_intervals(result):
        probes = [p for p in (_number(t) for t in item.get("probes") or []) if p is not None]
        rows.append({"phase": str(item.get("phase") or ""), "start": _seconds_text(item.get("start")),
                     "end": _seconds_text(item.get("end")),
                     "closed": _seconds_text(item.get("closed_at")) if item.get("closed_at")
                     is not None else "never seen closing",
                     "probes": ", ".join(f"{p:.2f}s" for p in probes) or "none"})
    return rows


def _seconds(result: Result) -> list[dict[str, Any]]:
    """The lower band as a table (its text alternative), in the chart's own columns."""
    if not upstream_chart.seen(result):
        return []
    return upstream_chart.columns(result, frame(result))


def _request(raw: dict[str, Any]) -> dict[str, Any]:
    latency = _number(raw.get("latency_ms"))
    if latency is None and _number(raw.get("latency_s")) is not None:
        latency = 1000 * float(raw["latency_s"])
    return {"t": _number(raw.get("t")), "name": str(raw.get("request") or raw.get("name") or ""),
            "outcome": str(raw.get("outcome") or ""), "status": raw.get("status"),
            "latency_ms": latency, "method": str(raw.get("method") or ""),
            "rid": str(raw.get("rid") or "")}


def _attempt(raw: dict[str, Any], since: float | None) -> dict[str, Any]:
    t, end = _number(raw.get("t")), _number(raw.get("end"))
    offset = None
    if since is not None and t is not None and (t > 1e8) == (since > 1e8):  # one clock
        offset = t - since
    return {"offset": offset,
            "status": raw.get("status"), "ended": str(raw.get("ended") or ""),
            "wait": None if t is None or end is None else end - t,
            "conn": str(raw.get("conn") or ""), "retry_after": raw.get("retry_after")}


def drilldown(result: Result) -> list[dict[str, Any]]:
    """Each kept client request with its attempts, bounded (MAX_REQUESTS, MAX_ATTEMPTS)."""
    items = getattr(result, "drilldown", None)
    rows = []
    for item in (items if isinstance(items, list) else [])[:MAX_REQUESTS]:
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            continue
        request = _request(item["request"])
        attempts = [a for a in item.get("attempts") or [] if isinstance(a, dict)]
        request["attempts"] = [_attempt(a, request["t"]) for a in attempts[:MAX_ATTEMPTS]]
        request["count"], request["more"] = len(attempts), max(len(attempts) - MAX_ATTEMPTS, 0)
        rows.append(request)
    return rows
