"""pytest plugin: scenario files become test items, and fixtures run scenarios from Python.

``pytest scenarios/`` collects one item per scenario file (only YAML files inside a
folder named ``scenarios`` that look like scenarios, so other YAML is left alone);
an item fails with the assertion messages of the run, or with the one-line
``file:line: key: message`` of an invalid file.

Fixtures, for scenario tests written in Python against the same engine::

    def test_gateway_survives_resets(chaos_run):
        result = chaos_run("scenarios/backend-reset.yaml", set=["phases.1.duration=5s"])
        assert result.passed, result.failed_assertions

Options: ``--chaos-set KEY.PATH=VALUE`` (repeatable, applied to every collected
scenario, e.g. to shorten phases in CI) and ``--chaos-report-dir DIR``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chaos.errors import ScenarioFailed
from chaos.rerun import run_command

if TYPE_CHECKING:
    from chaos.scenario.model import Scenario
    from chaos.verdict.result import Result

ChaosRun = Callable[..., "Result"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gateway-chaos")
    group.addoption("--chaos-set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a value in every collected scenario (like chaos run --set)")
    group.addoption("--chaos-report-dir", default=None, metavar="DIR",
                    help="where scenario runs write their reports (default: reports/)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos_scenario: a test item collected from a scenario file")


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and file_path.parent.name == "scenarios":
        try:
            text = file_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        if "phases:" in text and "services:" in text:
            return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        item = ScenarioItem.from_parent(self, name=self.path.stem)
        item.add_marker("chaos_scenario")
        yield item


def _report_dir(config: pytest.Config) -> Path:
    option = config.getoption("--chaos-report-dir", default=None)
    return Path(option) if option else Path("reports")


def run_file(path: str | Path, *, overrides: Sequence[str] = (), report_dir: Path | None = None,
             quiet: bool = True) -> Result:
    """Load (with overrides), run and return the Result; ScenarioError for a bad file."""
    from chaos.engine import run_scenario
    from chaos.scenario.loader import load_scenario

    path = Path(path)
    scenario = load_scenario(path, list(overrides))
    command = run_command(path, overrides)
    return run_scenario(scenario, file=str(path), scenario_yaml=path.read_text(encoding="utf-8"),
                        report_root=report_dir or Path("reports"), quiet=quiet, command=command)


def failure_text(result: Result) -> str:
    lines = [f"verdict {result.verdict} (exit {result.exit_code}); reports in {result.report_dir}"]
    for item in result.assertions:
        if (item.status or ("pass" if item.passed else "fail")) != "pass":
            lines.append(f"[{item.phase or 'run'}] {item.label} {item.bound}: "
                         f"{item.message or f'observed {item.observed}'}")
    if result.error:
        lines.append(result.error)
    return "\n".join(lines)


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from chaos.errors import ScenarioError

        try:
            result = run_file(self.path, overrides=self.config.getoption("--chaos-set", default=[]),
                              report_dir=_report_dir(self.config))
        except ScenarioError as exc:
            raise ScenarioFailed(exc.render()) from None
        self.user_properties.append(("report_dir", result.report_dir))
        if not result.passed:
            raise ScenarioFailed(failure_text(result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def chaos_report_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where chaos_run writes reports: --chaos-report-dir if given, else the test's tmp_path."""
    option = request.config.getoption("--chaos-report-dir", default=None)
    return Path(option) if option else tmp_path / "reports"


@pytest.fixture
def chaos_scenario() -> Callable[..., Scenario]:
    """chaos_scenario(path, set=[...]) -> the validated Scenario (no Docker involved)."""
    from chaos.scenario.loader import load_scenario

    def load(path: str | Path, set: Sequence[str] = ()) -> Scenario:  # noqa: A002 - like --set
        return load_scenario(path, list(set))

    return load


@pytest.fixture
def chaos_run(chaos_report_dir: Path) -> ChaosRun:
    """chaos_run(path, set=[...]) -> Result: one full run on the same engine as `chaos run`.

    Everything the run creates is removed before it returns (also when the test is
    interrupted); assert on ``result.passed``, ``result.assertions`` or ``result.phase_stats``.
    """

    def run(path: str | Path, set: Sequence[str] = (), quiet: bool = True) -> Result:  # noqa: A002
        return run_file(path, overrides=set, report_dir=chaos_report_dir, quiet=quiet)

    return run
