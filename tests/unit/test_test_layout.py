"""The test layout: tests/unit starts no servers, and helpers import under the project's name.

Parsed, not run: a unit test module importing what starts the reference apps, a loopback or
external stack, or Locust itself belongs in tests/integration; a module importing the old
top-level helper names (`apps`, `loopback`, `report_cases`) only works with a sys.path hack.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SERVER_MODULES = ("chaos.stack.processes", "chaos.stack.loopback", "chaos.stack.external",
                  "locust")
TOP_LEVEL_HELPERS = ("apps", "loopback", "report_cases", "scenarios")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def _hits(folder: Path, bad: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(TESTS)}:{line}: {name}"
            for path in sorted(folder.rglob("*.py")) for line, name in _imports(path)
            if any(name == b or name.startswith(b + ".") for b in bad)]


def test_unit_tests_start_no_servers() -> None:
    hits = _hits(TESTS / "unit", SERVER_MODULES)
    assert not hits, "move these to tests/integration:\n" + "\n".join(hits)


def test_helpers_import_as_tests_fixtures() -> None:
    hits = _hits(TESTS, TOP_LEVEL_HELPERS)
    assert not hits, "import as tests.fixtures.<name>:\n" + "\n".join(hits)


def test_every_test_folder_is_a_package() -> None:
    folders = [TESTS, *(p for p in TESTS.iterdir() if p.is_dir() and any(p.glob("*.py")))]
    missing = [str(p) for p in folders if not (p / "__init__.py").exists()]
    assert not missing and {"unit", "integration", "docker", "fixtures"} <= {
        p.name for p in folders}, missing


def test_docker_tests_live_in_tests_docker() -> None:
    marked = [f"{path.relative_to(TESTS)}:{node.lineno}"
              for folder in ("unit", "integration") for path in sorted((TESTS / folder).glob("*.py"))
              for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(node, ast.Attribute) and node.attr == "docker"
              and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"]
    assert not marked, "docker-marked tests belong in tests/docker: " + ", ".join(marked)
