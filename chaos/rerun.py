"""The `chaos run …` command line that reruns a run: one renderer, shell-quoted.

Written into result.json, the report and the console so a user can paste it back into a
shell; every argument is quoted (a path with a space, a ``--set`` with a quote), so that
``shlex.split`` of the line gives back exactly the arguments.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def run_command(path: str | Path, sets: Sequence[str] = (), *, build_roots: Sequence[str] = (),
                duration_scale: float = 1.0, capture: bool = False,
                baseline: str | None = None, tolerance: float = 0.0,
                gateway: str | None = None) -> str:
    """The shell line `chaos run PATH [--set K=V]... [options]` for these arguments."""
    argv = ["chaos", "run", str(path)]
    for override in sets:
        argv += ["--set", override]
    if gateway:
        argv += ["--gateway", gateway]
    for root in build_roots:
        argv += ["--build-root", root]
    if duration_scale != 1.0:
        argv += ["--duration-scale", f"{duration_scale:g}"]
    if capture:
        argv.append("--capture")
    if baseline:
        argv += ["--baseline", baseline, "--tolerance", f"{tolerance:g}"]
    return shlex.join(argv)
