"""report.html (and compare.html): one self-contained page each.

Inline CSS and SVG only: no scripts, no fonts, no images from anywhere, so the page
opens from disk, works offline and with JavaScript off; the Content-Security-Policy
meta tag forbids every fetch. Jinja2 autoescaping escapes all text from scenarios,
logs and results; the only markup passed through is the SVG the charts module builds
(which escapes its own text).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from chaos import outcomes as o
from chaos.capture import charts as evidence_charts
from chaos.report import charts, derive, llm, llm_chart, tls, tls_chart, upstream
from chaos.report.harness_banner import harness_banner
from chaos.report.text import clean
from chaos.verdict import recovery
from chaos.verdict.result import AssertionResult, PhaseStats, Result

_ENV = Environment(loader=PackageLoader("chaos.report", "templates"),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
ALWAYS_SHOWN = (o.OK, o.OK_AFTER_RETRY, o.GRACEFUL, o.RESET)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1000:.2f}s" if value >= 10000 else f"{value:.1f}ms"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def _breakable(name: str) -> Markup:
    """An outcome name that may wrap after its underscores (ok_after_retry), nowhere else."""
    return Markup("_<wbr>").join(name.split("_"))


def _ci(item: AssertionResult) -> str:
    if item.ci_low is None or item.ci_high is None:
        return "n/a"
    if item.kind in ("success_rate", "error_rate"):
        return f"{100 * item.ci_low:.2f}% to {100 * item.ci_high:.2f}%"
    return f"{item.ci_low:.4g} to {item.ci_high:.4g}"


_ENV.filters.update(ms=_ms, pct=_pct, num=_num, clean=clean, secs=recovery.seconds_text,
                    breakable=_breakable)
_ENV.globals.update(ci=_ci, recovery_line=recovery.described)


def outcome_columns(stats: list[PhaseStats]) -> list[str]:
    seen = {k for p in stats for k, v in p.counts.items() if v}
    return [o for o in charts.COLORS if o in ALWAYS_SHOWN or o in seen]


def _context(result: Result) -> dict[str, Any]:
    derive.enrich(result)
    total = sum(p.total for p in result.phase_stats)
    successes = sum(p.counts.get(k, 0) for p in result.phase_stats for k in o.SUCCESS)
    statuses = [a.status for a in result.assertions]
    return {
        "r": result,
        "outcome_chart": Markup(charts.outcome_chart(result)),
        "latency_chart": Markup(charts.latency_chart(result)),
        "breaker_band": Markup(charts.breaker_band(result)),
        "llm": llm_chart.shown(result),  # LLM records: tokens/s and token latencies
        "tokens_chart": Markup(llm_chart.tokens_chart(result)),
        "token_latency_chart": Markup(llm_chart.token_latency_chart(result)),
        "llm_legend": Markup(llm_chart.legend()),
        "llm_section": llm.section(result),
        "tls_section": tls.section(result),  # TLS handshakes per phase, failures by reason
        "tls_legend": Markup(tls_chart.legend(result)),
        "harness_banner": harness_banner(result),
        "legend": Markup(charts.legend()),
        "latency_legend": Markup(charts.latency_legend()),
        "breaker_legend": Markup(charts.breaker_legend()),
        "outcomes": outcome_columns(result.phase_stats),
        "windows": {w.name: w for w in result.phases},
        "total": total,
        "success_rate": successes / total if total else None,
        "counts": {s: statuses.count(s) for s in ("pass", "fail", "inconclusive")},
        "score_formula": derive.SCORE_FORMULA,
        "recovery_definition": derive.RECOVERY_DEFINITION,
        "retry_definition": derive.RETRY_DEFINITION,
        "score_class": _score_class(result.score),
        "bucket": charts.frame(result).bucket,
        "up": _upstream(result),
        **_evidence(result),
    }


def _upstream(result: Result) -> dict[str, Any] | None:
    """The "Seen from the upstream" section (chaos.report.upstream); None for a run without
    a witness, such as a result.json written before there was one."""
    section = upstream.section(result)
    if section is not None:
        section["legend"] = Markup(section["legend"])
    return section


def _evidence(result: Result) -> dict[str, Any]:
    """The evidence section's charts (chaos.capture): socket states and RSTs per hop."""
    if not result.evidence:
        return {"ev": None}
    rst_legend, rst_chart = evidence_charts.rst_chart(result)
    sockets = [(name, Markup(leg), Markup(svg))
               for name, leg, svg in evidence_charts.socket_charts(result)]
    return {"ev": result.evidence, "ev_rst_legend": Markup(rst_legend),
            "ev_rst_chart": Markup(rst_chart), "ev_sockets": sockets, **_split_samples(result)}


def _split_samples(result: Result) -> dict[str, Any]:
    """Failed-request samples apart from the graceful errors the scenario expected
    (derive.expected_error_phases), with the counts of each over the whole run."""
    phases = derive.expected_error_phases(result)
    expected: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for sample in result.evidence.get("samples") or []:
        where = derive.phase_at(result, float(sample.get("t", 0)))
        is_expected = sample.get("outcome") in o.COUNT_BOUNDS["graceful_errors"] and where in phases
        (expected if is_expected else failed).append(sample)
    expected_total = derive.expected_errors(result)
    failed_total = int(result.evidence.get("failed_total") or len(failed) + len(expected))
    return {"failed_samples": failed, "expected_samples": expected,
            "expected_total": expected_total,
            "failures_total": max(failed_total - expected_total, len(failed)),
            "expected_phases": [w.name for w in result.phases if w.name in phases]}


def _score_class(score: int | None) -> str:
    if score is None:
        return "none"
    return "good" if score >= 90 else "fair" if score >= 70 else "poor"


def render_html(result: Result) -> str:
    return _ENV.get_template("report.html.j2").render(**_context(result))


def _key(item: AssertionResult) -> tuple[str, str, str]:
    return item.phase, item.label, item.bound


def render_compare(old: Result, new: Result) -> str:
    """Side by side: two runs' verdicts, figures, assertions and phases, with what changed."""
    before, after = _context(old), _context(new)
    keys: list[tuple[str, str, str]] = []
    for item in old.assertions + new.assertions:
        if _key(item) not in keys:
            keys.append(_key(item))
    old_by, new_by = {_key(a): a for a in old.assertions}, {_key(a): a for a in new.assertions}
    rows = [{"key": k, "old": old_by.get(k), "new": new_by.get(k)} for k in keys]
    names: list[str] = []
    for stats in old.phase_stats + new.phase_stats:
        if stats.name not in names:
            names.append(stats.name)
    old_ph, new_ph = {p.name: p for p in old.phase_stats}, {p.name: p for p in new.phase_stats}
    phases = [{"name": n, "old": old_ph.get(n), "new": new_ph.get(n)} for n in names]
    return _ENV.get_template("compare.html.j2").render(
        old=before, new=after, rows=rows, phases=phases, score_formula=derive.SCORE_FORMULA)
