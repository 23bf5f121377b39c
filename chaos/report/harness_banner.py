"""The banner of a run whose own harness broke (result.environment_error): not a verdict.

A dead proxy server or load generator makes the gateway look broken; the banner says
which part died, how and when, and a band over the run's seconds marks those whose
traffic measured the harness instead of the gateway. Plain HTML and inline SVG, every
text escaped, in keeping with the rest of report.html.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from chaos.verdict.result import Result

WIDTH = 900
HEIGHT = 18


def _band(result: Result, start: float, end: float) -> str:
    """The run's seconds as a strip, the affected ones shaded."""
    span = max([w.end for w in result.phases] + [end, 1.0])
    x0 = max(0.0, start) / span * WIDTH
    x1 = max(x0 + 2, min(end, span) / span * WIDTH)
    return (f'<svg class="harness-band" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>seconds {start:.1f} to {end:.1f} measured '
            f'the broken harness</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#eee"/>'
            f'<rect x="{x0:.1f}" width="{x1 - x0:.1f}" height="{HEIGHT}" fill="#b71c1c" '
            f'opacity="0.6"/></svg>')


def harness_banner(result: Result) -> Markup:
    """Empty unless a part of the harness died during the run."""
    failure = result.environment_error
    if failure is None:
        return Markup("")
    start, end = failure.affected_from, failure.affected_to
    return Markup(
        '<div class="errorbox harness-failure" id="harness-failure"><b>Harness failure, not '
        'a gateway finding:</b> {part} {how} at {at:.1f}s. Seconds {start:.1f} to {end:.1f} '
        'of the run measured the broken harness; the run was stopped and no assertion was '
        'judged.<br>{band}</div>').format(
            part=escape(failure.part), how=escape(failure.how), at=failure.at, start=start,
            end=end, band=Markup(_band(result, start, end)))
