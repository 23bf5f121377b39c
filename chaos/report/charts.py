"""Inline SVG charts for the HTML report (no scripts, no network: opens from disk)."""

from __future__ import annotations

from html import escape
from typing import Any

from chaos.verdict.result import Result

COLORS = {
    "ok": "#2e7d32", "ok_after_retry": "#66bb6a", "graceful_error": "#f9a825",
    "reset": "#c62828", "refused": "#8e24aa", "connect_timeout": "#6d4c41",
    "read_timeout": "#a1887f", "closed": "#ef6c00", "truncated": "#d81b60", "other": "#757575",
}
WIDTH, HEIGHT, LEFT, BOTTOM = 900, 220, 50, 24


def _x(t: float, span: float) -> float:
    return LEFT + (WIDTH - LEFT - 10) * (t / span if span else 0)


def _phase_bands(result: Result, span: float, height: float) -> list[str]:
    parts = []
    for i, window in enumerate(result.phases):
        x0, x1 = _x(window.start, span), _x(window.end, span)
        fill = "#1565c0" if window.faults else "#9e9e9e"
        opacity = 0.10 if window.faults else 0.04 + 0.03 * (i % 2)
        title = escape(window.name + (": " + "; ".join(window.faults) if window.faults else ""))
        parts.append(f'<rect class="phase" x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{height}" fill="{fill}" fill-opacity="{opacity}">'
                     f"<title>{title}</title></rect>")
        parts.append(f'<text x="{x0 + 3:.1f}" y="12" font-size="11" fill="#333">'
                     f"{escape(window.name)}</text>")
    for fault in result.faults:
        x0 = _x(fault.start, span)
        x1 = _x(fault.end if fault.end is not None else fault.start, span)
        parts.append(f'<rect class="fault" x="{x0:.1f}" y="16" width="{max(x1 - x0, 2):.1f}" '
                     f'height="5" fill="#c62828"><title>{escape(fault.description)}</title></rect>')
    return parts


def outcome_chart(result: Result) -> str:
    rows: list[dict[str, Any]] = result.timeline
    span = max((w.end for w in result.phases), default=0.0) or float(len(rows) or 1)
    plot_h = HEIGHT - BOTTOM - 24
    peak = max((r["total"] for r in rows), default=0) or 1
    parts = _phase_bands(result, span, HEIGHT - BOTTOM)
    bar_w = max((WIDTH - LEFT - 10) / max(span, 1) - 1, 1)
    for row in rows:
        y = HEIGHT - BOTTOM
        tip = ", ".join(f"{k}={row[k]}" for k in COLORS if row.get(k))
        for outcome, color in COLORS.items():
            count = row.get(outcome, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(f'<rect x="{_x(row["t"], span):.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>t={row["t"]}s {escape(tip)}'
                         f"</title></rect>")
    parts.append(_axes(span, peak, "req/s"))
    return _svg("requests per second by outcome", parts)


def latency_chart(result: Result) -> str:
    rows = result.timeline
    span = max((w.end for w in result.phases), default=0.0) or float(len(rows) or 1)
    values = [r.get("p99_ms") or 0 for r in rows]
    peak = max(values, default=0) or 1
    plot_h = HEIGHT - BOTTOM - 24
    parts = _phase_bands(result, span, HEIGHT - BOTTOM)
    for key, color in (("p50_ms", "#1e88e5"), ("p95_ms", "#fb8c00"), ("p99_ms", "#e53935")):
        points = [f"{_x(r['t'] + 0.5, span):.1f},{HEIGHT - BOTTOM - plot_h * r[key] / peak:.1f}"
                  for r in rows if r.get(key) is not None]
        if points:
            parts.append(f'<polyline class="latency" fill="none" stroke="{color}" '
                         f'stroke-width="1.5" points="{" ".join(points)}">'
                         f"<title>{key[:3]}</title></polyline>")
    parts.append(_axes(span, peak, "ms"))
    return _svg("latency p50/p95/p99 per second", parts)


def breaker_band(result: Result) -> str:
    if not result.breaker:
        return ""
    span = max((w.end for w in result.phases), default=0.0) or 1.0
    names = {0.0: ("closed", "#2e7d32"), 1.0: ("open", "#c62828"), 2.0: ("half-open", "#f9a825")}
    parts = []
    samples = [(t, v) for t, v in result.breaker if 0 <= t <= span]
    for (t, value), nxt in zip(samples, samples[1:] + [(span, None)], strict=False):
        label, color = names.get(value, (str(value), "#757575"))
        width = max(_x(nxt[0], span) - _x(t, span), 1)
        parts.append(f'<rect x="{_x(t, span):.1f}" y="0" width="{width:.1f}" '
                     f'height="18" fill="{color}"><title>t={t:.1f}s breaker {label}</title></rect>')
    return (f'<svg class="chart breaker" role="img" aria-label="breaker state" viewBox="0 0 {WIDTH} 20" '
            f'width="100%" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def _axes(span: float, peak: float, unit: str) -> str:
    base = HEIGHT - BOTTOM
    ticks = []
    step = max(1, int(span // 10) or 1)
    for t in range(0, int(span) + 1, step):
        ticks.append(f'<text x="{_x(t, span):.1f}" y="{base + 14}" font-size="10" '
                     f'text-anchor="middle">{t}s</text>')
    return (f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#333"/>'
            f'<text x="4" y="30" font-size="10">{peak:.0f} {unit}</text>' + "".join(ticks))


def _svg(label: str, parts: list[str]) -> str:
    return (f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in COLORS.items())
    return f'<div class="legend">{items}</div>'
