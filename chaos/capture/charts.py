"""SVG charts of the evidence on the report's shared time axis: socket states, RSTs per hop."""

from __future__ import annotations

from html import escape
from typing import Any

from chaos import chart_frame as C
from chaos.verdict.result import Result

STATE_COLORS = {"ESTAB": "#1e88e5", "TIME-WAIT": "#8e24aa", "CLOSE-WAIT": "#c62828",
                "SYN-SENT": "#ef6c00", "SYN-RECV": "#f9a825", "FIN-WAIT-1": "#6d4c41",
                "FIN-WAIT-2": "#a1887f", "LAST-ACK": "#d81b60"}
HOP_COLORS = ["#c62828", "#1e88e5", "#2e7d32", "#ef6c00", "#8e24aa", "#6d4c41"]


def _line_chart(result: Result, ident: str, label: str, series: dict[str, list[tuple[float, float]]],
                colors: dict[str, str], unit: str) -> str:
    f = C.frame(result)
    peak = C.nice(max([v for pts in series.values() for _, v in pts] + [1.0]))

    def y(v: float) -> float:
        return f.base - C.PLOT_H * (v / peak)

    parts = C.backdrop(result, f, ident)
    parts.append(C.value_axis(f, [(y(peak * k / 4), f"{peak * k / 4:g}") for k in range(5)], unit))
    for name, points in series.items():
        if not points:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{f.x(t):.1f},{y(v):.1f}"
                        for i, (t, v) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colors.get(name, "#757575")}" '
                     f'stroke-width="1.6"><title>{escape(name)}</title></path>')
    parts.append(C.time_axis(f))
    return C.svg(ident, label, f, parts)


def legend(colors: dict[str, str]) -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in colors.items())
    return f'<div class="legend">{items}</div>'


def socket_charts(result: Result) -> list[tuple[str, str, str]]:
    """(service, legend, svg) per captured service: one line per TCP state seen."""
    rows: list[dict[str, Any]] = result.evidence.get("sockets") or []
    out = []
    for service in sorted({r["service"] for r in rows}):
        mine = [r for r in rows if r["service"] == service]
        states = [s for s in STATE_COLORS if any(r["states"].get(s) for r in mine)]
        series = {s: [(float(r["t"]), float(r["states"].get(s, 0))) for r in mine] for s in states}
        colors = {s: STATE_COLORS[s] for s in states}
        out.append((service, legend(colors), _line_chart(
            result, f"sockets-{service}", f"TCP socket states in {service}", series, colors,
            "sockets")))
    return out


def rst_chart(result: Result) -> tuple[str, str]:
    """(legend, svg): RST packets per second on each hop."""
    capture = result.evidence.get("capture") or {}
    hops = [h["hop"] for h in capture.get("hops", []) if h.get("rst")]
    if not hops:
        return "", ""
    colors = {hop: HOP_COLORS[i % len(HOP_COLORS)] for i, hop in enumerate(hops)}
    series: dict[str, list[tuple[float, float]]] = {}
    for hop in hops:
        per = {int(r["t"]): float(r["rst"]) for r in capture.get("seconds", []) if r["hop"] == hop}
        # Zero on the seconds either side of each counted one, not on every second between
        # (the same line, without a point per second of a week-long axis).
        seconds = sorted({s + d for s in per for d in (-1, 0, 1)})
        if seconds:
            series[hop] = [(s + 0.5, per.get(s, 0.0)) for s in seconds]
    return legend(colors), _line_chart(result, "rst-per-hop", "TCP RST packets per second per hop",
                                       series, colors, "RST/s")
