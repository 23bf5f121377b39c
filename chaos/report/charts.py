"""Inline SVG charts for the HTML report: no scripts, no network, opens from disk.

All charts share one time axis (seconds since the first phase started) so that a
fault window lines up across requests, latency and the breaker band. Hovering shows
values through SVG <title> elements (native browser tooltips), so it works with
JavaScript off. Long runs are bucketed to at most MAX_COLUMNS columns to keep the
page small.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies), one meaning each: vermillion is a reset and nothing else; latency lines are
a blue ramp told apart by dashes as well; the breaker band is a grey ramp (closed pale,
open black); fault windows are hatched (an SVG pattern), not coloured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any

from chaos import outcomes as o
from chaos.chart_frame import LEFT, PLOT_H, RIGHT, WIDTH, Frame, bar_width, frame
from chaos.chart_frame import backdrop as _backdrop
from chaos.chart_frame import nice as _nice
from chaos.chart_frame import svg as _svg
from chaos.chart_frame import time_axis as _time_axis
from chaos.chart_frame import value_axis as _value_axis
from chaos.report import tls_chart, upstream_chart
from chaos.report.derive import state_name
from chaos.verdict.result import Result

COLORS = {
    o.OK: "#009E73", o.OK_AFTER_RETRY: "#8FD6C2", o.GRACEFUL: "#E69F00",
    o.RESET: "#D55E00", o.REFUSED: "#CC79A7", o.CONNECT_TIMEOUT: "#56B4E9",
    o.READ_TIMEOUT: "#0072B2", o.CLOSED: "#000000", o.TRUNCATED: "#F0E442", o.OTHER: "#999999",
    # LLM streams: an error told in band near graceful's orange, a stream ended without its
    # terminator near truncated's yellow, a stalled one near the timeouts' blues
    o.INBAND_ERROR: "#F5C26B", o.TRUNCATED_SUCCESS: "#A39A1E", o.STREAM_STALLED: "#3B3B98",
    # a refused TLS handshake: a failure at connection time, next to refused's purple
    o.TLS_HANDSHAKE_FAILED: "#7A2E6B",
}
LATENCY_COLORS = {"p50_ms": "#56B4E9", "p95_ms": "#0072B2", "p99_ms": "#002D4D"}
LATENCY_DASHES = {"p50_ms": "2 2", "p95_ms": "6 3", "p99_ms": ""}
BREAKER_COLORS = {o.BREAKER_CLOSED: "#DDE3E7", o.BREAKER_HALF_OPEN: "#8C969C",
                  o.BREAKER_OPEN: "#000000"}


def _columns(result: Result, f: Frame) -> list[dict[str, Any]]:
    """Timeline rows merged into buckets of f.bucket seconds (counts averaged per second,
    latency percentiles: the highest per-second value in the bucket)."""
    if f.bucket == 1:
        return [dict(row) for row in result.timeline]
    merged: dict[int, dict[str, Any]] = {}
    for row in result.timeline:
        start = int(row["t"]) // f.bucket * f.bucket
        col = merged.setdefault(start, {"t": start, "n": 0})
        col["n"] += 1
        for key, value in row.items():
            if key == "t" or value is None:
                continue
            if key in LATENCY_COLORS:
                col[key] = max(col.get(key) or 0.0, float(value))
            else:
                col[key] = col.get(key, 0) + value
    for col in merged.values():
        for key in [k for k in col if k not in LATENCY_COLORS and k not in ("t", "n")]:
            col[key] = round(col[key] / col["n"], 1)
    return [merged[k] for k in sorted(merged)]


def _tip(col: dict[str, Any], bucket: int) -> str:
    t = int(col["t"])
    when = f"t={t}s" if bucket == 1 else f"t={t}-{t + bucket}s (per-second average)"
    counts = ", ".join(f"{k} {col[k]:g}" for k in COLORS if col.get(k))
    lat = ", ".join(f"{k[:3]} {col[k]:g}ms" for k in LATENCY_COLORS if col.get(k) is not None)
    return f"{when}: {col.get('total', 0):g} req/s" + (f" ({counts})" if counts else "") + (
        f"; latency {lat}" if lat else "")


def _hover(cols: list[dict[str, Any]], f: Frame, height: float = PLOT_H,
           upstream: dict[int, dict[str, Any]] | None = None,
           tls: dict[int, dict[str, Any]] | None = None) -> list[str]:
    """One hover target per column; with `upstream` (the two-sided chart) it spans both
    bands and its tooltip gives the upstream's attempts of the same seconds; with `tls`,
    the column's TLS handshake failures by reason (chaos.report.tls_chart)."""
    width = (WIDTH - LEFT - RIGHT) * f.bucket / f.span
    return [f'<rect class="hover" x="{f.x(c["t"]):.1f}" y="{f.top:.0f}" width="{max(width, 1):.2f}" '
            f'height="{height:.0f}"><title>{escape(_tip(c, f.bucket))}'
            f'{escape(upstream_chart.tip(upstream.get(int(c["t"]))) if upstream is not None else "")}'
            f'{escape(tls_chart.tip(tls.get(int(c["t"]))) if tls else "")}'
            f"</title></rect>" for c in cols]


def outcome_chart(result: Result) -> str:
    """Client outcomes per second; with a witness, upstream attempts in a band below the
    same time axis, on the same scale (chaos.report.upstream_chart)."""
    f = frame(result)
    cols = _columns(result, f)
    two = upstream_chart.two_sided(result)
    up_cols = upstream_chart.columns(result, f) if two else []
    peak = _nice(max([float(c.get("total") or 0) for c in cols]
                     + [float(c.get("attempts") or 0) for c in up_cols] + [0.0]))
    low = upstream_chart.bottom(result, f) if two else None
    parts = _backdrop(result, f, "timeline-rps", low)
    ticks = [(f.base - PLOT_H * k / 4, f"{peak * k / 4:g}") for k in range(1, 5)]
    parts.append(_value_axis(f, ticks, "client req/s" if two else "req/s"))
    for col in cols:
        y = f.base
        x = f.x(col["t"])
        bar_w = bar_width(f, x)
        for outcome, color in COLORS.items():
            count = float(col.get(outcome) or 0)
            if count <= 0:
                continue
            h = PLOT_H * count / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{color}"/>')
    parts.append(_time_axis(f))
    tls = tls_chart.columns(result, f)  # handshake failures: marked, reasons in the tooltips
    if low is None:
        parts.extend(_hover(cols, f, tls=tls))
        parts.extend(tls_chart.marks(result, f))
        return _svg("timeline-rps", "requests per second by outcome class", f, parts)
    parts.extend(upstream_chart.band(result, f, up_cols, peak))
    by_t = {int(c["t"]): c for c in up_cols}
    parts.extend(_hover(cols or [{"t": c["t"]} for c in up_cols], f, low - f.top, by_t, tls))
    parts.extend(tls_chart.marks(result, f))
    return _svg("timeline-rps", "two-sided timeline: client requests per second by outcome class "
                "above the time axis, upstream attempts per second by how they ended below it",
                f, parts, low + 6)


def log_scale(f: Frame, values: list[float]) -> tuple[Callable[[float], float],
                                                     list[tuple[float, str]]]:
    """A log ms axis over whole decades holding ``values`` (1-1000 ms when there are
    none): the y of a value, and the ticks (y, label)."""
    if values:
        low = 10 ** math.floor(math.log10(max(min(values), 0.1)))
        high = 10 ** math.ceil(math.log10(max(max(values), low * 10)))
    else:
        low, high = 1.0, 1000.0
    decades = math.log10(high / low)

    def y_of(ms: float) -> float:
        return f.base - PLOT_H * math.log10(max(ms, low) / low) / decades

    return y_of, [(y_of(low * 10 ** k), f"{low * 10 ** k:g}") for k in range(int(decades) + 1)]


def line_marks(cols: list[dict[str, Any]], key: str, f: Frame, y_of: Callable[[float], float],
               color: str, dash: str, width: float, dot_class: str, line_class: str,
               ) -> list[str]:
    """One value per column drawn at the middle of its bucket: a polyline through each run
    of columns that have it, a dot for a run of one."""
    half = f.bucket / 2
    runs: list[list[str]] = [[]]
    for col in cols:
        value = col.get(key)
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{f.x(col['t'] + half):.1f},{y_of(float(value)):.1f}")
    marks = []
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    for points in (r for r in runs if r):
        if len(points) == 1:
            x, y = points[0].split(",")
            marks.append(f'<circle class="{dot_class}" cx="{x}" cy="{y}" r="1.8" fill="{color}"/>')
        else:
            marks.append(f'<polyline class="{line_class}" fill="none" stroke="{color}" '
                         f'stroke-width="{width}"{dashes} points="{" ".join(points)}"/>')
    return marks


def latency_chart(result: Result) -> str:
    f = frame(result)
    cols = _columns(result, f)
    parts = _backdrop(result, f, "timeline-latency")
    y_of, ticks = log_scale(f, [float(c[k]) for c in cols for k in LATENCY_COLORS if c.get(k)])
    parts.append(_value_axis(f, ticks, "ms (log)"))
    for key, color in LATENCY_COLORS.items():
        parts.extend(line_marks(cols, key, f, y_of, color, LATENCY_DASHES[key],
                                2.2 if key == "p99_ms" else 1.6, "latency", f"latency {key[:3]}"))
    parts.append(_time_axis(f))
    parts.extend(_hover(cols, f))
    return _svg("timeline-latency", "latency p50, p95 and p99 per second", f, parts)


def breaker_band(result: Result) -> str:
    if not result.breaker:
        return ""
    f = frame(result)
    height = 22
    parts = ['<text x="4" y="15" font-size="10" fill="#455a64">breaker</text>']
    for start, end, value in _breaker_spans(result.breaker, f.span):
        if end <= 0:
            continue
        name = state_name(value)
        color = BREAKER_COLORS.get(name, "#757575")
        x0, x1 = f.x(start), f.x(end)
        parts.append(f'<rect class="breaker-state {escape(name)}" x="{x0:.1f}" y="3" '
                     f'width="{max(x1 - x0, 0.8):.1f}" height="{height - 6}" fill="{color}">'
                     f"<title>breaker {escape(name)} from {start:.1f}s to {end:.1f}s</title></rect>")
    return (f'<svg id="timeline-breaker" class="chart breaker" role="img" aria-label="circuit breaker '
            f'state" viewBox="0 0 {WIDTH} {height}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def _breaker_spans(breaker: list[tuple[float, float]],
                   span: float) -> list[tuple[float, float, float]]:
    """(start, end, state) runs of equal state inside [0, span]; a state holds until the next
    sample. Samples after the run's end are dropped; none left (a probe that only answered
    after the last phase) draws an empty band, not an error."""
    samples = sorted(((t, v) for t, v in breaker if t <= span), key=lambda s: s[0])
    merged: list[tuple[float, float, float]] = []
    for i, (t, value) in enumerate(samples):
        end = samples[i + 1][0] if i + 1 < len(samples) else span
        if merged and merged[-1][2] == value:
            merged[-1] = (merged[-1][0], end, value)
        else:
            merged.append((max(t, 0.0), end, value))
    return merged


FAULT_KEY = '<span><i class="hatch"></i>fault window</span>'


def legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in COLORS.items())
    return f'<div class="legend">{items}{FAULT_KEY}</div>'


def latency_legend() -> str:
    items = "".join(f'<span><i class="line" style="border-top:2.5px '
                    f'{"dashed" if LATENCY_DASHES[k] else "solid"} {c}"></i>{k[:3]}</span>'
                    for k, c in LATENCY_COLORS.items())
    return f'<div class="legend">{items}{FAULT_KEY}</div>'


def breaker_legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in BREAKER_COLORS.items())
    return f'<div class="legend">breaker state: {items}</div>'
