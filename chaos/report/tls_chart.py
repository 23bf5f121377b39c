"""TLS handshake failures on the outcome timeline (issue 22), from result.tls_timeline
(computed by chaos.verdict.tls_figures).

A refused handshake already has its colour in the stacked bars (tls_handshake_failed); a
reset or a close during the handshake is drawn as a reset or a close. So each column with a
handshake failure of either kind gets a mark at the top of the plot, in the
tls_handshake_failed colour, whose tooltip (an SVG <title>: no script) gives the failures
by reason; the column's hover tooltip says the same, and a legend under the chart lists the
run's reasons. Reasons are text from the server: everything here is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from chaos.chart_frame import LEFT, RIGHT, WIDTH, Frame
from chaos.outcomes import TLS_HANDSHAKE_FAILED
from chaos.verdict.result import Result

MARK_COLOR = "#7A2E6B"  # charts.COLORS[tls_handshake_failed]
REASONS_IN_TIP = 5


def rows(result: Result) -> list[dict[str, Any]]:
    value = getattr(result, "tls_timeline", None)
    return (
        [r for r in value if isinstance(r, dict) and isinstance(r.get("t"), int | float)]
        if isinstance(value, list)
        else []
    )


def label(outcome: str, reason: str) -> str:
    """A failure as the report names it: the reason, prefixed by the outcome class when the
    handshake was reset or closed rather than refused."""
    return reason if outcome == TLS_HANDSHAKE_FAILED else f"{outcome}: {reason}"


def columns(result: Result, f: Frame) -> dict[int, dict[str, Any]]:
    """Seconds with a handshake failure merged into the chart's columns (f.bucket seconds):
    {column start: {"failed": n, "handshakes": n, "reasons": {label: n}}}."""
    merged: dict[int, dict[str, Any]] = {}
    for row in rows(result):
        failed = row.get("failed")
        if not isinstance(failed, int) or failed <= 0:
            continue
        start = int(row["t"]) // f.bucket * f.bucket
        if not 0 <= start < f.span:
            continue
        col = merged.setdefault(start, {"failed": 0, "handshakes": 0, "reasons": {}})
        col["failed"] += failed
        handshakes = row.get("handshakes")
        col["handshakes"] += handshakes if isinstance(handshakes, int) else 0
        for item in row.get("failures") or []:
            if isinstance(item, dict) and isinstance(item.get("count"), int):
                key = label(str(item.get("outcome", "")), str(item.get("reason", "")))
                col["reasons"][key] = col["reasons"].get(key, 0) + item["count"]
    return merged


def tip(col: dict[str, Any] | None) -> str:
    """The column's TLS line for a tooltip (plain text; the caller escapes it)."""
    if not col:
        return ""
    reasons = sorted(col["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    shown = "; ".join(f"{reason} ({n})" for reason, n in reasons[:REASONS_IN_TIP])
    more = len(reasons) - REASONS_IN_TIP
    return (
        f"\nTLS handshakes failed: {col['failed']} of {col['handshakes']}"
        + (f": {shown}" if shown else "")
        + (f"; {more} more reasons" if more > 0 else "")
    )


def marks(result: Result, f: Frame) -> list[str]:
    """A downward triangle at the top of each column with a handshake failure."""
    out = []
    width = (WIDTH - LEFT - RIGHT) * f.bucket / f.span if f.span else 0.0
    for start, col in sorted(columns(result, f).items()):
        x = f.x(start) + width / 2
        when = f"t={start}s" if f.bucket == 1 else f"t={start}-{start + f.bucket}s"
        text = when + tip(col)
        out.append(
            f'<path class="tls-failure" d="M{x - 4:.1f} {f.top + 1:.1f}h8l-4 7z" '
            f'fill="{MARK_COLOR}" stroke="#fff" stroke-width="0.6">'
            f"<title>{escape(text)}</title></path>"
        )
    return out


def legend(result: Result) -> str:
    """Under the timeline: the run's handshake failures by reason; "" without any."""
    tls = getattr(result, "tls", None)
    whole = tls.get("whole") if isinstance(tls, dict) else None
    failures = whole.get("failures") if isinstance(whole, dict) else None
    if not failures:
        return ""
    items = "".join(
        f'<span class="tls-reason">{escape(label(str(i.get("outcome", "")), str(i.get("reason", ""))))}'
        f" ({int(i.get('count') or 0)})</span>"
        for i in failures
        if isinstance(i, dict)
    )
    return (
        f'<div class="legend" id="tls-legend"><span><i style="background:{MARK_COLOR};'
        f'clip-path:polygon(0 0,100% 0,50% 100%)"></i>TLS handshake failed in that '
        f"second (hover a mark for the reasons); in the judged phases:</span>{items}</div>"
    )
