"""The lower band of the two-sided timeline: what the upstream saw, second by second.

Drawn inside the client outcome chart (chaos.report.charts.outcome_chart), under its time
axis, on the same x geometry and the same req/s scale, so that a retry storm (more attempts
than requests) or an open breaker (requests, no attempts) reads straight across. Fault
windows and phase bounds run through both bands (chaos.chart_frame.backdrop's `bottom`).

Colours keep the report's conventions (Okabe-Ito; vermillion is a client reset and nothing
else): a complete 2xx is green like an ok, an error status orange like a graceful error,
an attempt the gateway abandoned blue like a timeout, a failed one (refused, reset or cut
upstream) reddish purple like refused. The inferred breaker uses the breaker band's grey
ramp: open intervals shaded black (translucent), half-open probes marked in black on grey.

Old results (no witness fields) read as None here and the chart stays one-sided.
"""

from __future__ import annotations

from html import escape
from typing import Any

from chaos.chart_frame import AXIS_H, LEFT, PLOT_H, RIGHT, WIDTH, Frame, bar_width, fit
from chaos.verdict.result import Result

ATTEMPT_COLORS = {"complete_2xx": "#009E73", "error_status": "#E69F00",
                  "abandoned": "#56B4E9", "failed": "#CC79A7"}
ATTEMPT_MEANING = {"complete_2xx": "complete 2xx", "error_status": "error status",
                   "abandoned": "abandoned by the gateway", "failed": "failed"}
NOTE_H = 40  # the lower band's height when there is no witness: one line of text
OPEN_INK, PROBE_INK = "#000000", "#8C969C"


def witness(result: Result) -> dict[str, Any] | None:
    value = getattr(result, "witness", None)
    return value if isinstance(value, dict) and value else None


def _rows(result: Result, name: str) -> list[dict[str, Any]]:
    value = getattr(result, name, None)
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def attempt_rows(result: Result) -> list[dict[str, Any]]:
    return _rows(result, "attempt_timeline")


def breaker_intervals(result: Result) -> list[dict[str, Any]]:
    return _rows(result, "breaker_inferred")


def two_sided(result: Result) -> bool:
    """A lower band is drawn when the run had a witness (even "none": it says why)."""
    return witness(result) is not None or bool(attempt_rows(result))


def seen(result: Result) -> bool:
    """The upstream was watched: attempts can be drawn (not kind "none")."""
    kind = (witness(result) or {}).get("kind")
    return kind != "none" if kind else bool(attempt_rows(result))


def columns(result: Result, f: Frame) -> list[dict[str, Any]]:
    """attempt_timeline rows in buckets of f.bucket seconds (per-second averages)."""
    merged: dict[int, dict[str, float]] = {}
    for row in attempt_rows(result):
        try:
            start = int(float(row.get("t", 0))) // f.bucket * f.bucket
        except (TypeError, ValueError, OverflowError):
            continue
        if not 0 <= start < f.span:  # outside the phases: off the axis, not piled on its edge
            continue
        col = merged.setdefault(start, {"t": start})
        for key in ("attempts", *ATTEMPT_COLORS):
            col[key] = col.get(key, 0.0) + _count(row.get(key))
    for col in merged.values():
        for key in ("attempts", *ATTEMPT_COLORS):
            col[key] = round(col.get(key, 0.0) / f.bucket, 1)
    return [merged[k] for k in sorted(merged)]


def _count(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


def band_top(f: Frame) -> float:
    return f.base + AXIS_H


def bottom(result: Result, f: Frame) -> float:
    return band_top(f) + (PLOT_H if seen(result) else NOTE_H)


def tip(col: dict[str, Any] | None) -> str:
    """The upstream half of a column's tooltip."""
    if not col:
        return "; upstream: no attempts"
    split = ", ".join(f"{ATTEMPT_MEANING[k]} {col[k]:g}" for k in ATTEMPT_COLORS if col.get(k))
    return f"; upstream: {col.get('attempts', 0):g} attempts/s" + (f" ({split})" if split else "")


def band(result: Result, f: Frame, cols: list[dict[str, Any]], peak: float) -> list[str]:
    """The lower band's marks: axis, attempt bars growing down, breaker shading, probes."""
    top = band_top(f)
    if not seen(result):
        return [_no_witness(result, f, top)]
    parts = [_axis(f, top, peak)]
    for col in cols:
        y, x = top, f.x(col["t"])
        bar_w = bar_width(f, x)
        for key, color in ATTEMPT_COLORS.items():
            h = PLOT_H * min(float(col.get(key) or 0), peak) / peak
            if h <= 0:
                continue
            parts.append(f'<rect class="attempts {key}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{color}"/>')
            y += h
    parts.extend(_breaker(result, f, top))
    return parts


def _axis(f: Frame, top: float, peak: float) -> str:
    parts = [f'<text x="4" y="{top + 12:.0f}" font-size="10" fill="#455a64">upstream</text>',
             f'<text x="4" y="{top + 24:.0f}" font-size="10" fill="#455a64">attempts/s</text>',
             f'<line x1="{LEFT}" y1="{top:.0f}" x2="{WIDTH - RIGHT}" y2="{top:.0f}" stroke="#455a64"/>']
    for k in range(1, 5):
        y = top + PLOT_H * k / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     f'stroke="#cfd8dc" stroke-width="0.6"/>'
                     f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="10" fill="#455a64" '
                     f'text-anchor="end">{peak * k / 4:g}</text>')
    return "".join(parts)


def _no_witness(result: Result, f: Frame, top: float) -> str:
    note = str((witness(result) or {}).get("note") or "the run had no upstream witness")
    text = "upstream not seen: " + note
    return (f'<g class="witness-none"><title>{escape(text)}</title>'
            f'<rect x="{LEFT}" y="{top + 4:.0f}" width="{WIDTH - LEFT - RIGHT}" height="{NOTE_H - 8}" '
            f'fill="#ffffff" fill-opacity="0.85" stroke="#90a4ae" stroke-dasharray="3 3"/>'
            f'<text x="{LEFT + 8}" y="{top + NOTE_H / 2 + 4:.0f}" font-size="11" fill="#37474f">'
            f"{escape(fit(text, WIDTH - LEFT - RIGHT - 16))}</text></g>")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _breaker(result: Result, f: Frame, top: float) -> list[str]:
    """Inferred open intervals shaded across the lower band; each half-open probe a mark."""
    parts: list[str] = []
    for item in breaker_intervals(result):
        start = _num(item.get("start"))
        if start is None:
            continue
        closed = _num(item.get("closed_at"))
        end = _num(item.get("end")) or closed or f.span
        x0, x1 = f.x(start), f.x(end)
        title = f"breaker open (inferred from the upstream) from {start:.2f}s to {end:.2f}s"
        title += f", closed at {closed:.2f}s" if closed is not None else ", never seen closing"
        probes = [p for p in (_num(t) for t in item.get("probes") or []) if p is not None]
        title += f"; {len(probes)} half-open probe{'s' if len(probes) != 1 else ''}"
        parts.append(f'<g class="breaker-open"><title>{escape(title)}</title>'
                     f'<rect class="breaker-shade" x="{x0:.1f}" y="{top:.0f}" '
                     f'width="{max(x1 - x0, 1):.1f}" height="{PLOT_H}" fill="{OPEN_INK}" '
                     f'fill-opacity="0.13"/><rect x="{x0:.1f}" y="{top:.0f}" '
                     f'width="{max(x1 - x0, 1):.1f}" height="4" fill="{OPEN_INK}"/></g>')
        for t in probes:
            x = f.x(t)
            parts.append(f'<g class="breaker-probe"><title>half-open probe at {t:.2f}s</title>'
                         f'<line x1="{x:.1f}" y1="{top + 4:.0f}" x2="{x:.1f}" y2="{top + PLOT_H:.0f}" '
                         f'stroke="{OPEN_INK}" stroke-width="1.2" stroke-dasharray="2 2"/>'
                         f'<path d="M{x:.1f} {top + 6:.0f} l5 6 l-5 6 l-5 -6 z" fill="{PROBE_INK}" '
                         f'stroke="{OPEN_INK}"/></g>')
    return parts


def legend(result: Result) -> str:
    """The lower band's key (the upper band keeps charts.legend)."""
    if not seen(result):
        return ""
    items = "".join(f'<span><i style="background:{c}"></i>{escape(ATTEMPT_MEANING[k])}</span>'
                    for k, c in ATTEMPT_COLORS.items())
    breaker = ""
    if breaker_intervals(result):
        breaker = ('<span><i style="background:rgba(0,0,0,.13);border-top:3px solid #000"></i>'
                   'breaker open (inferred)</span><span><i style="background:#8C969C;'
                   'border:1px solid #000;transform:rotate(45deg)"></i>half-open probe</span>')
    return f'<div class="legend" id="attempt-legend">upstream attempts: {items}{breaker}</div>'
