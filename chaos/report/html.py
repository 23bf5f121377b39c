"""report.html: one self-contained page (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from chaos.report import charts
from chaos.verdict.result import Result

_ENV = Environment(loader=PackageLoader("chaos.report", "templates"),
                   autoescape=select_autoescape(["html", "j2"]))


def render_html(result: Result) -> str:
    template = _ENV.get_template("report.html.j2")
    return template.render(
        r=result,
        outcome_chart=Markup(charts.outcome_chart(result)),
        latency_chart=Markup(charts.latency_chart(result)),
        breaker_band=Markup(charts.breaker_band(result)),
        legend=Markup(charts.legend()),
        outcomes=list(charts.COLORS),
    )
