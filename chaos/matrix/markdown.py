"""The README scorecard: the matrix as a Markdown table, with its versions and date."""

from __future__ import annotations

from chaos.matrix.html import WORDS, short_failure
from chaos.matrix.store import Matrix


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def scorecard(matrix: Matrix, width: int = 70) -> str:
    columns = {c.gateway: c for c in matrix.columns}
    head = "| Scenario | " + " | ".join(f"`{g}`" for g in matrix.gateways) + " |"
    rule = "|---|" + "---|" * len(matrix.gateways)
    rows = [head, rule]
    for scenario in matrix.scenarios:
        cells = []
        for gateway in matrix.gateways:
            cell = matrix.cell(scenario, gateway)
            if cell is None:
                cells.append("not run")
                continue
            if cell.verdict == "n/a":
                cells.append("n/a")  # why: said under the table (_not_applicable_legend)
                continue
            why = short_failure(cell, width)
            cells.append(f"**{WORDS[cell.verdict]}**" + (f": {_escape(why)}" if why else ""))
        rows.append(f"| `{scenario}` | " + " | ".join(cells) + " |")
    score = ["| resilience score | " + " | ".join(
        (f"{c.score:.1f} ({c.scored_cells} cells)" if c and c.score is not None else "n/a")
        for c in (columns.get(g) for g in matrix.gateways)) + " |"]
    versions = [f"- `{g}`: {columns[g].version or 'version not recorded'}"
                for g in matrix.gateways if g in columns]
    date = matrix.updated_at[:10]
    versions[:0] = _not_applicable_legend(matrix)
    return "\n".join([*rows, *score, "", f"Matrix `{matrix.id}`, {date}, harness "
                      f"`{matrix.harness}`. Versions that ran:", *versions, "",
                      matrix.score_definition, ""])


# What each kind of n/a cell means, by the words its reason (cell.error) starts with
# (chaos.scenario.gateways.not_routed, no_tls).
_NOT_APPLICABLE = (
    ("is an LLM gateway", "- n/a: an LLM gateway (`api: llm` in its gateway.yaml) routes only "
                          "the LLM APIs, and that scenario's load sends other requests"),
    ("does not serve TLS", "- n/a (TLS scenarios): the profile has no `tls: true` in its "
                           "gateway.yaml: it cannot serve the run's certificate or trust its CA"),
)


def _not_applicable_legend(matrix: Matrix) -> list[str]:
    reasons = [c.error or "" for c in matrix.cells if c.verdict == "n/a"]
    return [line for words, line in _NOT_APPLICABLE if any(words in r for r in reasons)]
