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
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from chaos import outcomes as o
from chaos.report.derive import state_name
from chaos.verdict.result import Result

COLORS = {
    o.OK: "#009E73", o.OK_AFTER_RETRY: "#8FD6C2", o.GRACEFUL: "#E69F00",
    o.RESET: "#D55E00", o.REFUSED: "#CC79A7", o.CONNECT_TIMEOUT: "#56B4E9",
    o.READ_TIMEOUT: "#0072B2", o.CLOSED: "#000000", o.TRUNCATED: "#F0E442", o.OTHER: "#999999",
}
LATENCY_COLORS = {"p50_ms": "#56B4E9", "p95_ms": "#0072B2", "p99_ms": "#002D4D"}
LATENCY_DASHES = {"p50_ms": "2 2", "p95_ms": "6 3", "p99_ms": ""}
BREAKER_COLORS = {o.BREAKER_CLOSED: "#DDE3E7", o.BREAKER_HALF_OPEN: "#8C969C",
                  o.BREAKER_OPEN: "#000000"}
FAULT_INK = "#37474f"  # the hatch and the label bar of a fault window
WIDTH, LEFT, RIGHT = 960, 60, 12
PLOT_H, AXIS_H, PHASE_H, LANE_H = 170, 22, 16, 13
MAX_COLUMNS = 600


@dataclass
class Frame:
    """The shared geometry: time span and the vertical room taken by the fault lanes."""

    span: float
    lanes: int
    bucket: int  # seconds per column

    @property
    def top(self) -> float:
        return PHASE_H + LANE_H * self.lanes + 4

    @property
    def base(self) -> float:
        return self.top + PLOT_H

    @property
    def height(self) -> float:
        return self.base + AXIS_H

    def x(self, t: float) -> float:
        t = min(max(t, 0.0), self.span)
        return LEFT + (WIDTH - LEFT - RIGHT) * (t / self.span if self.span else 0.0)


def frame(result: Result) -> Frame:
    ends = [w.end for w in result.phases] or [float(len(result.timeline))]
    span = max(ends + [1.0])
    bucket = max(1, math.ceil(span / MAX_COLUMNS))
    return Frame(span=span, lanes=len(_lanes(result)[1]) if result.faults else 0, bucket=bucket)


def fault_end(result: Result, index: int, span: float) -> float:
    fault = result.faults[index]
    if fault.end is not None:
        return fault.end
    windows = [w for w in result.phases if w.name == fault.phase]
    return windows[0].end if windows else span


def _lanes(result: Result) -> tuple[list[int], list[float]]:
    """Assign each fault a label lane so that overlapping windows do not overwrite labels."""
    span = max([w.end for w in result.phases] + [1.0])
    lane_of: list[int] = []
    lane_ends: list[float] = []
    for i, fault in enumerate(result.faults):
        if fault.kind == "restore":  # a marker, not a window: it takes no lane
            lane_of.append(-1)
            continue
        end = fault_end(result, i, span)
        for lane, busy_until in enumerate(lane_ends):
            if fault.start >= busy_until:
                lane_ends[lane] = end
                lane_of.append(lane)
                break
        else:
            lane_ends.append(end)
            lane_of.append(len(lane_ends) - 1)
    return lane_of, lane_ends


def _fit(text: str, pixels: float) -> str:
    room = max(int(pixels / 5.6), 0)
    if len(text) <= room:
        return text
    return text[: max(room - 1, 0)] + "…" if room > 1 else ""


def _backdrop(result: Result, f: Frame, ident: str = "chart") -> list[str]:
    """Phases (alternating shade, name on top) and fault windows (hatched, labelled lane)."""
    ident = _id(ident)
    parts = [_hatch(ident)]
    for i, window in enumerate(result.phases):
        x0, x1 = f.x(window.start), f.x(window.end)
        title = window.name + (": " + "; ".join(window.faults) if window.faults else "")
        title += f" ({window.start:.1f}s to {window.end:.1f}s)"
        parts.append(f'<rect class="phase" x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{f.base:.0f}" fill="#90a4ae" fill-opacity="{0.05 + 0.07 * (i % 2):.2f}">'
                     f"<title>phase {escape(title)}</title></rect>")
        parts.append(f'<line x1="{x0:.1f}" y1="0" x2="{x0:.1f}" y2="{f.base:.0f}" stroke="#78909c" '
                     f'stroke-dasharray="3 3"/>')
        parts.append(f'<text class="phase-label" x="{x0 + 3:.1f}" y="11" font-size="11" '
                     f'font-weight="600" fill="#37474f">{escape(_fit(window.name, x1 - x0 - 4))}</text>')
    lane_of, _ = _lanes(result)
    for i, fault in enumerate(result.faults):
        if fault.kind == "restore":
            parts.append(_restore_mark(result, f, i))
            continue
        x0, x1 = f.x(fault.start), f.x(fault_end(result, i, f.span))
        width = max(x1 - x0, 2)
        y = PHASE_H + LANE_H * lane_of[i]
        end = fault_end(result, i, f.span)
        title = escape(f"fault: {fault.description} ({fault.start:.1f}s to {end:.1f}s, "
                       f"phase {fault.phase})" + (f"; {fault.error}" if fault.error else ""))
        parts.append(f'<g class="fault-window" data-fault="{i}"><title>{title}</title>'
                     f'<rect class="fault-shade" x="{x0:.1f}" y="{y:.0f}" width="{width:.1f}" '
                     f'height="{f.base - y:.0f}" fill="url(#{ident}-hatch)"/>'
                     f'<rect x="{x0:.1f}" y="{y:.0f}" width="{width:.1f}" height="{LANE_H - 2}" '
                     f'fill="{FAULT_INK}" fill-opacity="0.85"/>'
                     f'<text x="{x0 + 2:.1f}" y="{y + LANE_H - 4:.0f}" font-size="9.5" fill="#fff">'
                     f"{escape(_fit(fault.description, width - 4))}</text></g>")
    return parts


def _id(text: str) -> str:
    """A chart name made safe for an id and a url(#...) reference (service names are data)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def _hatch(ident: str) -> str:
    """The diagonal hatch that marks fault windows (one pattern per chart: ids are unique)."""
    return (f'<defs><pattern id="{ident}-hatch" class="fault-hatch" width="7" height="7" '
            f'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<rect width="7" height="7" fill="#ffffff" fill-opacity="0.35"/>'
            f'<line x1="0" y1="0" x2="0" y2="7" stroke="{FAULT_INK}" stroke-width="2" '
            f'stroke-opacity="0.28"/></pattern></defs>')


def _restore_mark(result: Result, f: Frame, index: int) -> str:
    """A restoring action (start, unpause) is an instant: a line with a label, no window."""
    fault = result.faults[index]
    x = f.x(fault.start)
    title = escape(f"restore: {fault.description} (requested at {fault.start:.2f}s, phase "
                   f"{fault.phase})" + (f"; {fault.error}" if fault.error else ""))
    label = escape(_fit("↑ " + fault.description, WIDTH - RIGHT - x - 4))
    return (f'<g class="restore-mark" data-fault="{index}"><title>{title}</title>'
            f'<line x1="{x:.1f}" y1="{PHASE_H}" x2="{x:.1f}" y2="{f.base:.0f}" stroke="#37474f" '
            f'stroke-width="1.5" stroke-dasharray="5 2"/>'
            f'<text x="{x + 3:.1f}" y="{f.top + 10:.0f}" font-size="9.5" fill="#37474f">'
            f"{label}</text></g>")


def _nice(peak: float) -> float:
    if peak <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(peak))
    for m in (1, 2, 2.5, 5, 10):
        if peak <= m * exp:
            return m * exp
    return 10 * exp


def _time_axis(f: Frame) -> str:
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if f.span / s <= 12), 7200)
    parts = [f'<line x1="{LEFT}" y1="{f.base:.0f}" x2="{WIDTH - RIGHT}" y2="{f.base:.0f}" stroke="#455a64"/>']
    for t in range(0, int(f.span) + 1, step):
        label = f"{t}s" if f.span < 600 else f"{t // 60}m{t % 60:02d}s"
        parts.append(f'<text x="{f.x(t):.1f}" y="{f.base + 14:.0f}" font-size="10" fill="#455a64" '
                     f'text-anchor="middle">{label}</text>')
    return "".join(parts)


def _value_axis(f: Frame, ticks: list[tuple[float, str]], unit: str) -> str:
    parts = []
    for y, label in ticks:
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#cfd8dc" '
                     f'stroke-width="0.6"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="10" fill="#455a64" '
                     f'text-anchor="end">{label}</text>')
    parts.append(f'<text x="4" y="{f.top - 10:.0f}" font-size="10" fill="#455a64">{escape(unit)}</text>')
    return "".join(parts)


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


def _hover(cols: list[dict[str, Any]], f: Frame) -> list[str]:
    width = (WIDTH - LEFT - RIGHT) * f.bucket / f.span
    return [f'<rect class="hover" x="{f.x(c["t"]):.1f}" y="{f.top:.0f}" width="{max(width, 1):.2f}" '
            f'height="{PLOT_H}"><title>{escape(_tip(c, f.bucket))}</title></rect>' for c in cols]


def outcome_chart(result: Result) -> str:
    f = frame(result)
    cols = _columns(result, f)
    peak = _nice(max((float(c.get("total") or 0) for c in cols), default=0.0))
    parts = _backdrop(result, f, "timeline-rps")
    ticks = [(f.base - PLOT_H * k / 4, f"{peak * k / 4:g}") for k in range(1, 5)]
    parts.append(_value_axis(f, ticks, "req/s"))
    bar_w = max((WIDTH - LEFT - RIGHT) * f.bucket / f.span - 0.6, 0.8)
    for col in cols:
        y = f.base
        x = f.x(col["t"])
        for outcome, color in COLORS.items():
            count = float(col.get(outcome) or 0)
            if count <= 0:
                continue
            h = PLOT_H * count / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{color}"/>')
    parts.append(_time_axis(f))
    parts.extend(_hover(cols, f))
    return _svg("timeline-rps", "requests per second by outcome class", f, parts)


def latency_chart(result: Result) -> str:
    f = frame(result)
    cols = _columns(result, f)
    values = [float(c[k]) for c in cols for k in LATENCY_COLORS if c.get(k)]
    parts = _backdrop(result, f, "timeline-latency")
    if values:
        low = 10 ** math.floor(math.log10(max(min(values), 0.1)))
        high = 10 ** math.ceil(math.log10(max(max(values), low * 10)))
    else:
        low, high = 1.0, 1000.0
    decades = math.log10(high / low)

    def y_of(ms: float) -> float:
        return f.base - PLOT_H * math.log10(max(ms, low) / low) / decades

    ticks = [(y_of(low * 10 ** k), f"{low * 10 ** k:g}") for k in range(int(decades) + 1)]
    parts.append(_value_axis(f, ticks, "ms (log)"))
    half = f.bucket / 2
    for key, color in LATENCY_COLORS.items():
        runs: list[list[str]] = [[]]
        for col in cols:
            value = col.get(key)
            if value is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{f.x(col['t'] + half):.1f},{y_of(float(value)):.1f}")
        for points in (r for r in runs if r):
            if len(points) == 1:
                x, y = points[0].split(",")
                parts.append(f'<circle class="latency" cx="{x}" cy="{y}" r="1.8" fill="{color}"/>')
            else:
                dash = f' stroke-dasharray="{LATENCY_DASHES[key]}"' if LATENCY_DASHES[key] else ""
                parts.append(f'<polyline class="latency {key[:3]}" fill="none" stroke="{color}" '
                             f'stroke-width="{2.2 if key == "p99_ms" else 1.6}"{dash} '
                             f'points="{" ".join(points)}"/>')
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


def _svg(ident: str, label: str, f: Frame, parts: list[str]) -> str:
    return (f'<svg id="{escape(ident)}" class="chart" role="img" aria-label="{escape(label)}" '
            f'viewBox="0 0 {WIDTH} {f.height:.0f}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


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
