"""The locustfile runs inside Locust's gevent process (`locust -f chaos/load/locustfile.py`):
what it imports of the harness, and what those modules import in turn when loaded, stays
light. Parsed with ast (module-level imports only; those inside functions run later, if
ever), so nothing here starts Locust or patches the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import chaos

PACKAGE = Path(chaos.__file__).parent
LOCUSTFILE = PACKAGE / "load" / "locustfile.py"
HEAVY = {"requests", "docker", "pydantic", "yaml", "jinja2", "matplotlib", "pandas"}
# the locustfile's own third-party imports, which Locust brings anyway
LOCUST_SIDE = {"gevent", "greenlet", "locust", "urllib3"}


def _module_level_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def _source(module: str) -> Path | None:
    parts = module.split(".")
    as_file = PACKAGE.parent.joinpath(*parts).with_suffix(".py")
    as_package = PACKAGE.parent.joinpath(*parts, "__init__.py")
    return as_file if as_file.exists() else as_package if as_package.exists() else None


def _loaded_with(path: Path) -> dict[str, set[str]]:
    """Harness module -> the top-level packages it imports, for the file and all it loads."""
    seen: dict[str, set[str]] = {}
    todo = [("chaos.load.locustfile", path)]
    while todo:
        name, source = todo.pop()
        if name in seen:
            continue
        imports = _module_level_imports(source)
        seen[name] = {i.split(".")[0] for i in imports if not i.startswith("chaos")}
        for target in imports:
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):  # chaos.load.x loads chaos and chaos.load too
                prefix = ".".join(parts[:depth])
                found = _source(prefix) if prefix.startswith("chaos") else None
                if found is not None:
                    todo.append((prefix, found))
    return seen


def test_the_locustfile_pulls_in_no_heavy_library() -> None:
    heavy = {name: sorted(tops & HEAVY) for name, tops in _loaded_with(LOCUSTFILE).items()}
    assert {name: tops for name, tops in heavy.items() if tops} == {}


def test_its_harness_helpers_import_the_standard_library_only() -> None:
    import sys

    loaded = _loaded_with(LOCUSTFILE)
    assert {"chaos.load.records", "chaos.load.classify", "chaos.load.connections"} <= set(loaded)
    extra = {name: sorted(tops - set(sys.stdlib_module_names) - {"__future__"} - LOCUST_SIDE)
             for name, tops in loaded.items() if name != "chaos.load.locustfile"}
    assert {name: tops for name, tops in extra.items() if tops} == {}
