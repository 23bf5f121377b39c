"""Where a service's ``build:`` folder may be: a scenario file must not tar up any folder
of the host that holds a Dockerfile (``build: ../../etc``, ``build: /``).

Allowed: the scenario's own project (the nearest folder above the file holding ``.git``
or ``pyproject.toml``, else the file's folder), the harness's own ``docker/`` folder
(the reference images every scenario may use), and folders named with ``--build-root``.
Paths are resolved, symlinks included, before they are compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from chaos.runtime.paths import project_root

_PROJECT_MARKERS = (".git", "pyproject.toml")


def resolve_build(build: str) -> Path:
    """The folder a ``build:`` names, as the run will use it (relative to the project root)."""
    return (project_root() / build).resolve()


def scenario_project(scenario_file: Path) -> Path:
    """The nearest folder above the scenario holding .git or pyproject.toml, else its folder."""
    folder = scenario_file.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return folder


def allowed_roots(scenario_file: Path, extra: Iterable[str | Path] = ()) -> list[Path]:
    roots = [scenario_project(scenario_file), (project_root() / "docker").resolve()]
    roots += [Path(folder).resolve() for folder in extra]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def outside(build: str, roots: list[Path]) -> Path | None:
    """The resolved folder when it lies outside every root, else None."""
    try:
        folder = resolve_build(build)
    except (OSError, ValueError):  # NUL bytes, names too long for the OS
        return Path(build)
    if any(folder == root or folder.is_relative_to(root) for root in roots):
        return None
    return folder
