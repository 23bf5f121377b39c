"""pytest plugin: scenario files become test items (`pytest scenarios/backend-crash.yaml`).

Only YAML files inside a folder named `scenarios` that look like scenarios are
collected, so projects with other YAML files are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and file_path.parent.name == "scenarios":
        text = file_path.read_text(errors="replace")
        if "phases:" in text and "services:" in text:
            return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    """The scenario's verdict was not pass."""


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from chaos.engine import run_scenario
        from chaos.scenario.loader import load_scenario

        scenario = load_scenario(self.path)
        result = run_scenario(scenario, file=str(self.path), scenario_yaml=self.path.read_text(),
                              quiet=True, command=f"chaos run {self.path}")
        if not result.passed:
            lines = [f"verdict {result.verdict} (exit {result.exit_code})"]
            lines += [a.message for a in result.failed_assertions]
            if result.error:
                lines.append(result.error)
            raise ScenarioFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"
