"""The report's "LLM providers" section: per phase what the provider journals and the
streamed records showed (result.llm, computed by chaos.llm.analysis and
chaos.verdict.llm_figures), and the LLM drill-down (fallbacks, truncated successes,
re-attempts after an error, each with its provider attempts). Only draws; None for a run
without LLM figures (and for an old result.json)."""

from __future__ import annotations

from typing import Any

from chaos.report.sections import phase_block, phase_rows
from chaos.verdict.result import Result


def _ms(value: Any) -> str:
    return f"{value:g} ms" if isinstance(value, int | float) else "–"


def _row(name: str, m: dict[str, Any]) -> dict[str, str]:
    served = m.get("served_by") or {}
    after = m.get("reattempted_after") or {}
    waits = m.get("retry_after") or {}
    return {
        "phase": name,
        "streams": str(m.get("streamed", 0)),
        "tokens": str(m.get("tokens", 0)),
        "ttft": f"{_ms(m.get('ttft_p50_ms'))} / {_ms(m.get('ttft_p95_ms'))}",
        "itl": _ms(m.get("itl_p99_ms")),
        "served_by": ", ".join(f"{p} {n}" for p, n in served.items()) or "–",
        "fallback": str(m.get("fallback", 0)),
        "truncated": str(m.get("reclassified", 0)),
        "reattempts": ", ".join(f"after {s}: {sum(c.values())}" for s, c in after.items()
                                if isinstance(c, dict)) or "–",
        "retry_after": ", ".join(f"{p} {w.get('honoured', 0)}/{w.get('reattempts', 0)}"
                                 for p, w in waits.items() if isinstance(w, dict)) or "–",
    }


def _attempts(item: dict[str, Any]) -> str:
    steps = []
    for a in item.get("provider_attempts") or []:
        if not isinstance(a, dict):
            continue
        step = f"{a.get('provider', '?')} {a.get('status') or a.get('ended', '?')}"
        if a.get("ended") not in (None, "complete"):
            step += f" ({a.get('ended')})"
        if a.get("finish_reason"):
            step += f" {a['finish_reason']}"
        steps.append(step)
    return " → ".join(steps)


def section(result: Result) -> dict[str, Any] | None:
    llm = phase_block(result, "llm")
    if llm is None:
        return None
    rows = phase_rows(llm, _row)
    drill = []
    for item in llm.get("drilldown") or []:
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict):
            continue
        drill.append({"t": request.get("t"), "rid": str(request.get("rid", "")),
                      "outcome": str(request.get("outcome", "")),
                      "was": str(request.get("client_outcome") or ""),
                      "served_by": str(request.get("served_by") or "–"),
                      "attempts": _attempts(item)})
    providers = [str(p) for p in llm.get("providers") or []]
    return {"rows": rows, "drilldown": drill, "providers": providers,
            "journal": bool(llm.get("journal")), "attempts": llm.get("attempts", 0),
            "matched": llm.get("matched", 0)}
