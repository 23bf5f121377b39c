"""SVG primitives shared by the report's charts and the evidence charts (chaos.capture):
one time axis, phase shading and fault windows, so every chart on the page lines up.

Neutral ground: the report (chaos.report.charts) and the capture evidence both draw on it,
and neither reaches into the other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape

from chaos.verdict.result import Result

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
    return Frame(span=span, lanes=len(lanes(result)[1]) if result.faults else 0, bucket=bucket)


def fault_end(result: Result, index: int, span: float) -> float:
    fault = result.faults[index]
    if fault.end is not None:
        return fault.end
    windows = [w for w in result.phases if w.name == fault.phase]
    return windows[0].end if windows else span


def lanes(result: Result) -> tuple[list[int], list[float]]:
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


def fit(text: str, pixels: float) -> str:
    room = max(int(pixels / 5.6), 0)
    if len(text) <= room:
        return text
    return text[: max(room - 1, 0)] + "…" if room > 1 else ""


def backdrop(result: Result, f: Frame, ident: str = "chart",
             bottom: float | None = None) -> list[str]:
    """Phases (alternating shade, name on top) and fault windows (hatched, labelled lane),
    down to `bottom` (default: the plot's base; lower for a chart with a second band)."""
    ident = chart_id(ident)
    low = f.base if bottom is None else bottom
    parts = [hatch(ident)]
    for i, window in enumerate(result.phases):
        x0, x1 = f.x(window.start), f.x(window.end)
        title = window.name + (": " + "; ".join(window.faults) if window.faults else "")
        title += f" ({window.start:.1f}s to {window.end:.1f}s)"
        parts.append(f'<rect class="phase" x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{low:.0f}" fill="#90a4ae" fill-opacity="{0.05 + 0.07 * (i % 2):.2f}">'
                     f"<title>phase {escape(title)}</title></rect>")
        parts.append(f'<line x1="{x0:.1f}" y1="0" x2="{x0:.1f}" y2="{low:.0f}" stroke="#78909c" '
                     f'stroke-dasharray="3 3"/>')
        parts.append(f'<text class="phase-label" x="{x0 + 3:.1f}" y="11" font-size="11" '
                     f'font-weight="600" fill="#37474f">{escape(fit(window.name, x1 - x0 - 4))}</text>')
    lane_of, _ = lanes(result)
    for i, fault in enumerate(result.faults):
        if fault.kind == "restore":
            parts.append(restore_mark(result, f, i, bottom))
            continue
        x0, x1 = f.x(fault.start), f.x(fault_end(result, i, f.span))
        width = max(x1 - x0, 2)
        y = PHASE_H + LANE_H * lane_of[i]
        end = fault_end(result, i, f.span)
        title = escape(f"fault: {fault.description} ({fault.start:.1f}s to {end:.1f}s, "
                       f"phase {fault.phase})" + (f"; {fault.error}" if fault.error else ""))
        parts.append(f'<g class="fault-window" data-fault="{i}"><title>{title}</title>'
                     f'<rect class="fault-shade" x="{x0:.1f}" y="{y:.0f}" width="{width:.1f}" '
                     f'height="{low - y:.0f}" fill="url(#{ident}-hatch)"/>'
                     f'<rect x="{x0:.1f}" y="{y:.0f}" width="{width:.1f}" height="{LANE_H - 2}" '
                     f'fill="{FAULT_INK}" fill-opacity="0.85"/>'
                     f'<text x="{x0 + 2:.1f}" y="{y + LANE_H - 4:.0f}" font-size="9.5" fill="#fff">'
                     f"{escape(fit(fault.description, width - 4))}</text></g>")
    return parts


def chart_id(text: str) -> str:
    """A chart name made safe for an id and a url(#...) reference (service names are data)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def hatch(ident: str) -> str:
    """The diagonal hatch that marks fault windows (one pattern per chart: ids are unique)."""
    return (f'<defs><pattern id="{ident}-hatch" class="fault-hatch" width="7" height="7" '
            f'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<rect width="7" height="7" fill="#ffffff" fill-opacity="0.35"/>'
            f'<line x1="0" y1="0" x2="0" y2="7" stroke="{FAULT_INK}" stroke-width="2" '
            f'stroke-opacity="0.28"/></pattern></defs>')


def restore_mark(result: Result, f: Frame, index: int, bottom: float | None = None) -> str:
    """A restoring action (start, unpause) is an instant: a line with a label, no window."""
    fault = result.faults[index]
    x = f.x(fault.start)
    low = f.base if bottom is None else bottom
    title = escape(f"restore: {fault.description} (requested at {fault.start:.2f}s, phase "
                   f"{fault.phase})" + (f"; {fault.error}" if fault.error else ""))
    label = escape(fit("↑ " + fault.description, WIDTH - RIGHT - x - 4))
    return (f'<g class="restore-mark" data-fault="{index}"><title>{title}</title>'
            f'<line x1="{x:.1f}" y1="{PHASE_H}" x2="{x:.1f}" y2="{low:.0f}" stroke="#37474f" '
            f'stroke-width="1.5" stroke-dasharray="5 2"/>'
            f'<text x="{x + 3:.1f}" y="{f.top + 10:.0f}" font-size="9.5" fill="#37474f">'
            f"{label}</text></g>")


def bar_width(f: Frame, x: float) -> float:
    """A column's bar: one bucket wide, cut at the plot's right edge (a run's phases end a
    few ms into their last second, whose bar would otherwise run off the chart)."""
    full = (WIDTH - LEFT - RIGHT) * f.bucket / f.span - 0.6
    return max(min(max(full, 0.8), WIDTH - RIGHT - x), 0.0)


def nice(peak: float) -> float:
    if peak <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(peak))
    for m in (1, 2, 2.5, 5, 10):
        if peak <= m * exp:
            return m * exp
    return 10 * exp


def time_axis(f: Frame) -> str:
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if f.span / s <= 12), 7200)
    parts = [f'<line x1="{LEFT}" y1="{f.base:.0f}" x2="{WIDTH - RIGHT}" y2="{f.base:.0f}" stroke="#455a64"/>']
    for t in range(0, int(f.span) + 1, step):
        label = f"{t}s" if f.span < 600 else f"{t // 60}m{t % 60:02d}s"
        parts.append(f'<text x="{f.x(t):.1f}" y="{f.base + 14:.0f}" font-size="10" fill="#455a64" '
                     f'text-anchor="middle">{label}</text>')
    return "".join(parts)


def value_axis(f: Frame, ticks: list[tuple[float, str]], unit: str) -> str:
    parts = []
    for y, label in ticks:
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#cfd8dc" '
                     f'stroke-width="0.6"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="10" fill="#455a64" '
                     f'text-anchor="end">{label}</text>')
    parts.append(f'<text x="4" y="{f.top - 10:.0f}" font-size="10" fill="#455a64">{escape(unit)}</text>')
    return "".join(parts)


def svg(ident: str, label: str, f: Frame, parts: list[str], height: float | None = None) -> str:
    return (f'<svg id="{escape(ident)}" class="chart" role="img" aria-label="{escape(label)}" '
            f'viewBox="0 0 {WIDTH} {f.height if height is None else height:.0f}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')
