"""One vocabulary (chaos/outcomes.py): outcome names, their sets, count bounds, breaker states."""

from __future__ import annotations

import ast
from pathlib import Path

import chaos
from chaos import outcomes
from chaos.verdict.evaluate import EXPLAIN

PACKAGE = Path(chaos.__file__).parent
# Spellings only chaos/outcomes.py may hold (other names, such as "closed" or "connect_timeout",
# are also words of other vocabularies: arrival modes, load settings).
OWNED = {outcomes.OK_AFTER_RETRY, outcomes.GRACEFUL, outcomes.BREAKER_HALF_OPEN, "half_open"}


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_outcome_and_breaker_names_are_spelled_only_in_outcomes_py() -> None:
    spelled = {path.relative_to(PACKAGE).as_posix(): sorted(_string_literals(path) & OWNED)
               for path in sorted(PACKAGE.rglob("*.py")) if path.name != "outcomes.py"}
    assert {file: names for file, names in spelled.items() if names} == {}


def test_outcomes_py_imports_nothing_so_the_locustfile_may_use_it() -> None:
    tree = ast.parse((PACKAGE / "outcomes.py").read_text(encoding="utf-8"))
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    assert imported == []


def test_the_sets_and_the_count_bounds_agree() -> None:
    assert set(outcomes.SUCCESS) == outcomes.SUCCESSES < set(outcomes.HANDLED) <= set(outcomes.OUTCOMES)
    assert set(outcomes.COUNT_BOUNDS) == set(EXPLAIN)  # every count bound explains its failure
    assert all(set(v) <= set(outcomes.OUTCOMES) for v in outcomes.COUNT_BOUNDS.values())
    assert set(outcomes.BREAKER_STATES.values()) == {outcomes.BREAKER_CLOSED, outcomes.BREAKER_OPEN,
                                                     outcomes.BREAKER_HALF_OPEN}
