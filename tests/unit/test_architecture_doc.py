"""docs/architecture.md is the authority on the layout: it must name what exists.

A module added, moved or renamed without the page following it fails here, so a
newcomer's "where is X" read from the page stays true.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _modules() -> list[Path]:
    return sorted(p.relative_to(ROOT / "chaos") for p in (ROOT / "chaos").rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def test_every_package_has_its_paragraph() -> None:
    packages = sorted(p.name for p in (ROOT / "chaos").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    missing = [name for name in packages if f"`chaos/{name}/`" not in DOC]
    assert not missing, f"docs/architecture.md has no paragraph for chaos/{missing}"


def test_every_module_is_named() -> None:
    missing = [str(path) for path in _modules() if path.name not in DOC]
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


def test_every_path_it_names_exists() -> None:
    import re

    named = set(re.findall(r"`(chaos/[a-z_/]+(?:\.py|/))`", DOC))
    gone = sorted(p for p in named if not (ROOT / p).exists())
    assert not gone, f"docs/architecture.md names paths that do not exist: {gone}"
