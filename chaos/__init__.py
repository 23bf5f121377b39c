"""gateway-chaos: fault injection and chaos testing for API and LLM gateways.

The public API is small: ``load_scenario``, ``run_scenario`` and ``Result``.
Imports are lazy so that light sub-packages (the embedded Toxiproxy server,
which ships inside a container image on its own) do not pull in pydantic or
docker.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_scenario", "run_scenario", "Result", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "load_scenario":
        from chaos.scenario.loader import load_scenario

        return load_scenario
    if name == "run_scenario":
        from chaos.engine import run_scenario

        return run_scenario
    if name == "Result":
        from chaos.verdict.result import Result

        return Result
    raise AttributeError(name)
