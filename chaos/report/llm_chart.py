"""The LLM band of the timeline: tokens/s, TTFT p50/p95 and inter-token p99 per second.

Drawn under the outcome timeline on the same time axis (chaos.chart_frame.frame), from
result.llm_timeline (computed by chaos.verdict.llm_figures): one chart of tokens per
second (bars, the same green as an ok), one of the token latencies (log ms: TTFT p50 and
p95 in the latency chart's blue ramp, dashed like its p50/p95, inter-token p99 in reddish
purple). A run without LLM records has no rows, and neither chart is drawn.
"""

from __future__ import annotations

from html import escape
from typing import Any

from chaos.chart_frame import LEFT, PLOT_H, RIGHT, WIDTH, Frame, bar_width, frame
from chaos.chart_frame import backdrop as _backdrop
from chaos.chart_frame import nice as _nice
from chaos.chart_frame import svg as _svg
from chaos.chart_frame import time_axis as _time_axis
from chaos.chart_frame import value_axis as _value_axis
from chaos.report.charts import line_marks, log_scale
from chaos.verdict.result import Result

TOKENS_COLOR = "#009E73"
LINES = {"ttft_p50_ms": ("#56B4E9", "2 2", "TTFT p50"), "ttft_p95_ms": ("#0072B2", "6 3",
         "TTFT p95"), "itl_p99_ms": ("#CC79A7", "", "inter-token p99")}


def rows(result: Result) -> list[dict[str, Any]]:
    value = getattr(result, "llm_timeline", None)
    return [r for r in value if isinstance(r, dict) and isinstance(r.get("t"), int | float)] \
        if isinstance(value, list) else []


def shown(result: Result) -> bool:
    """The LLM charts are drawn only for a run with LLM records."""
    return bool(rows(result))


def _columns(result: Result, f: Frame) -> list[dict[str, Any]]:
    """Rows in buckets of f.bucket seconds: tokens/s averaged, latencies the highest."""
    merged: dict[int, dict[str, Any]] = {}
    for row in rows(result):
        start = int(row["t"]) // f.bucket * f.bucket
        if not 0 <= start < f.span:
            continue
        col = merged.setdefault(start, {"t": start, "tokens_per_s": 0.0})
        tokens = row.get("tokens_per_s")
        if isinstance(tokens, int | float):
            col["tokens_per_s"] += float(tokens) / f.bucket
        for key in LINES:
            value = row.get(key)
            if isinstance(value, int | float) and value > 0:
                col[key] = max(float(col.get(key) or 0.0), float(value))
    return [merged[k] for k in sorted(merged)]


def _tip(col: dict[str, Any], bucket: int) -> str:
    t = int(col["t"])
    when = f"t={t}s" if bucket == 1 else f"t={t}-{t + bucket}s"
    lat = ", ".join(f"{LINES[k][2]} {col[k]:g}ms" for k in LINES if col.get(k) is not None)
    return f"{when}: {col.get('tokens_per_s', 0):.1f} tokens/s" + (f"; {lat}" if lat else "")


def _hover(cols: list[dict[str, Any]], f: Frame) -> list[str]:
    width = (WIDTH - LEFT - RIGHT) * f.bucket / f.span
    return [f'<rect class="hover" x="{f.x(c["t"]):.1f}" y="{f.top:.0f}" '
            f'width="{max(width, 1):.2f}" height="{PLOT_H:.0f}"><title>'
            f"{escape(_tip(c, f.bucket))}</title></rect>" for c in cols]


def tokens_chart(result: Result) -> str:
    """Tokens per second the clients received ("" for a run without LLM records)."""
    if not shown(result):
        return ""
    f = frame(result)
    cols = _columns(result, f)
    peak = _nice(max([float(c["tokens_per_s"]) for c in cols] + [0.0]))
    parts = _backdrop(result, f, "timeline-tokens")
    parts.append(_value_axis(f, [(f.base - PLOT_H * k / 4, f"{peak * k / 4:g}")
                                 for k in range(1, 5)], "tokens/s"))
    for col in cols:
        h = PLOT_H * float(col["tokens_per_s"]) / peak if peak else 0.0
        if h <= 0:
            continue
        x = f.x(col["t"])
        parts.append(f'<rect class="tokens" x="{x:.1f}" y="{f.base - h:.1f}" '
                     f'width="{bar_width(f, x):.1f}" height="{h:.1f}" fill="{TOKENS_COLOR}"/>')
    parts.append(_time_axis(f))
    parts.extend(_hover(cols, f))
    return _svg("timeline-tokens", "tokens per second received by the clients", f, parts)


def token_latency_chart(result: Result) -> str:
    """TTFT p50/p95 and inter-token p99 per second on a log ms axis ("" without LLM rows)."""
    if not shown(result):
        return ""
    f = frame(result)
    cols = _columns(result, f)
    parts = _backdrop(result, f, "timeline-token-latency")
    y_of, ticks = log_scale(f, [float(c[k]) for c in cols for k in LINES if c.get(k)])
    parts.append(_value_axis(f, ticks, "ms (log)"))
    for key, (color, dash, _label) in LINES.items():
        parts.extend(line_marks(cols, key, f, y_of, color, dash, 1.8, key, key))
    parts.append(_time_axis(f))
    parts.extend(_hover(cols, f))
    return _svg("timeline-token-latency", "time to first token p50 and p95, inter-token gap "
                "p99, per second", f, parts)


def legend() -> str:
    lines = "".join(f'<span><i class="line" style="border-top:2.5px '
                    f'{"dashed" if dash else "solid"} {color}"></i>{escape(label)}</span>'
                    for color, dash, label in LINES.values())
    return (f'<div class="legend" id="llm-legend"><span><i style="background:{TOKENS_COLOR}">'
            f"</i>tokens/s</span>{lines}</div>")
