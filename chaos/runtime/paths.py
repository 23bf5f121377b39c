"""Where the project keeps its local state (.chaos/ beside the checkout or cwd)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout root: the folder holding docker/ and scenarios/.

    Falls back to the current directory for an installed package used elsewhere.
    """
    env = os.environ.get("CHAOS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "docker").is_dir():
        return here
    return Path.cwd()


def shared_modules() -> Path:
    """docker/shared: standard-library modules every reference service imports, copied
    beside each one's app.py in its image (chaos.runtime.images) and put on PYTHONPATH
    when it runs as a local process (chaos.stack.processes)."""
    return project_root() / "docker" / "shared"


def state_dir() -> Path:
    """Local, git-ignored state: wheelhouse, rootfs tarballs, ledgers, logs."""
    path = Path(os.environ.get("CHAOS_STATE_DIR", project_root() / ".chaos"))
    path.mkdir(parents=True, exist_ok=True)
    return path
