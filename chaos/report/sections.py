"""What the report's per-phase figure sections share (llm.py, tls.py): reading one block
of a Result (`{"by_phase": {name: figures}, "whole": figures}`) into table rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaos.verdict.result import Result


def phase_block(result: Result, key: str) -> dict[str, Any] | None:
    """The result's `key` block (result.llm, result.tls), or None when the run has none."""
    block = getattr(result, key, None)
    return block if isinstance(block, dict) and block else None


def phase_rows(block: dict[str, Any], row: Callable[[str, dict[str, Any]], Any]) -> list[Any]:
    """One row per phase of `block`, then "(run)" for the whole run, each made by `row`."""
    found = block.get("by_phase")
    by_phase: dict[str, Any] = found if isinstance(found, dict) else {}
    rows = [row(name, figures) for name, figures in by_phase.items() if isinstance(figures, dict)]
    if isinstance(block.get("whole"), dict):
        rows.append(row("(run)", block["whole"]))
    return rows
