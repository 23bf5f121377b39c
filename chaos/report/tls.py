"""The report's "TLS handshakes" section (templates/_tls.html.j2): per phase the handshakes the
clients ran, p50/p95/p99/max of their time, and the failures by reason (result.tls, computed
by chaos.verdict.tls_figures). Only draws; None for a run without TLS figures (and for an
old result.json). Reasons are server text: the template autoescapes them."""

from __future__ import annotations

from typing import Any

from chaos.report.sections import phase_block, phase_rows
from chaos.report.tls_chart import label
from chaos.verdict.result import Result


def _ms(value: Any) -> str:
    return f"{value:g} ms" if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def _row(name: str, tally: dict[str, Any]) -> dict[str, Any]:
    failures = [
        (label(str(i.get("outcome", "")), str(i.get("reason", ""))), int(i.get("count") or 0))
        for i in tally.get("failures") or []
        if isinstance(i, dict)
    ]
    return {
        "phase": name,
        "handshakes": int(tally.get("handshakes") or 0),
        "completed": int(tally.get("completed") or 0),
        "failed": int(tally.get("failed") or 0),
        **{q: _ms(tally.get(f"tls_{q}_ms")) for q in ("p50", "p95", "p99", "max")},
        "failures": failures,
    }


def section(result: Result) -> dict[str, Any] | None:
    tls = phase_block(result, "tls")
    if tls is None:
        return None
    rows = phase_rows(tls, _row)
    outside = tls.get("outside_phases")
    return {
        "rows": rows,
        "outside": outside if isinstance(outside, int) else 0,
        "failed": any(r["failed"] for r in rows),
        "none_judged": not any(r["handshakes"] for r in rows),  # all reused from the warm-up
    }
