"""The layers of chaos/ as the imports show them (parsed with ast, every import statement,
also those inside functions and under TYPE_CHECKING).

Data flows one way (DESIGN.md): the lower layers never reach up into the report, and the
Docker runtime never into the proxy client. A rule broken here was a cycle once
(verdict/baseline -> report/derive -> verdict/evaluate; runtime/ledger <-> proxy/external).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chaos

PACKAGE = Path(chaos.__file__).parent
LOWER = ("verdict", "observe", "capture", "runtime", "load", "witness", "llm")
# (importing package, imported package it must not reach)
RULES = [*((layer, "report") for layer in LOWER), ("runtime", "proxy")]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file."""
    return _imports_in(path.read_text(encoding="utf-8"), _module_name(path),
                       path.name == "__init__.py")


def _imports_in(text: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from chaos import report` names a package too
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _inside(module: str, package: str) -> bool:
    return module == f"chaos.{package}" or module.startswith(f"chaos.{package}.")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _violations(layer: str, forbidden: str) -> list[str]:
    found = []
    for path in _modules():
        if not _inside(_module_name(path), layer):
            continue
        for target, line in _imports(path):
            if _inside(target, forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}")
    return sorted(set(found))


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[f"{a}-not-{b}" for a, b in RULES])
def test_layer_does_not_import(layer: str, forbidden: str) -> None:
    assert _violations(layer, forbidden) == []


def test_the_parser_sees_lazy_relative_and_type_checking_imports() -> None:
    """The rules are only as good as the parser."""
    text = ("from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from chaos.proxy.client import ToxiproxyClient\n"
            "def f():\n    from ..report import mask\n"
            "from chaos import report\n")
    found = _imports_in(text, "chaos.runtime.sample")
    assert ("chaos.proxy.client", 3) in found
    assert ("chaos.report", 5) in found and ("chaos.report.mask", 5) in found
    assert ("chaos.report", 6) in found


def test_outcomes_and_errors_import_nothing_of_the_harness() -> None:
    """The shared vocabulary sits below every layer (the locustfile imports it under gevent)."""
    for name in ("outcomes.py", "errors.py"):
        assert [t for t, _ in _imports(PACKAGE / name) if t.startswith("chaos")] == []


def test_the_docs_state_the_report_rule_for_every_lower_layer() -> None:
    """docs/architecture.md's import rules name each layer this test holds to them."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rules = doc.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    rule = next(item for item in rules.split("\n- ") if "never import `chaos/report/`" in item)
    assert [layer for layer in LOWER if f"`chaos/{layer}/`" not in rule] == []
