"""The exception tree lives in one place (chaos/errors.py), and each error means one thing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chaos
from chaos import errors
from chaos.cli import main

PACKAGE = Path(chaos.__file__).parent
# Not harness errors: the embedded server's refusal, rendered as its HTTP answer and never
# leaving the server; the tap's parse error, which stops tapping one connection inside the
# server; a private class a module raises and catches itself (leading "_").
WIRE_ERRORS = {("proxy/embedded/errors.py", "ApiError"), ("proxy/embedded/http1.py", "ParseError")}


def _exception_classes() -> list[tuple[str, str]]:
    known = {name for name in dir(errors) if isinstance(getattr(errors, name), type)}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if any(b.endswith(("Exception", "Error")) or b in known for b in bases):
                found.append((path.relative_to(PACKAGE).as_posix(), node.name))
    return found


def test_every_harness_exception_is_defined_in_errors_py() -> None:
    outside = [(file, name) for file, name in _exception_classes()
               if file != "errors.py" and not name.startswith("_")
               and (file, name) not in WIRE_ERRORS]
    assert outside == []


def test_moved_exceptions_keep_their_old_import_paths() -> None:
    from chaos.capture.pcap import PcapError
    from chaos.pytest_plugin import ScenarioFailed
    from chaos.report.writer import ReportInputError
    from chaos.scenario.yaml_marks import SyntaxProblem

    assert (PcapError, ScenarioFailed, ReportInputError, SyntaxProblem) == (
        errors.PcapError, errors.ScenarioFailed, errors.ReportInputError, errors.SyntaxProblem)


@pytest.mark.parametrize(("paths", "compare"), [(["a.json", "b.json"], False),
                                              (["only.json"], True)])
def test_chaos_report_with_the_wrong_number_of_files_is_a_usage_error(
        paths: list[str], compare: bool, capsys: pytest.CaptureFixture[str]) -> None:
    from chaos.report.command import report

    with pytest.raises(errors.UsageError):
        report(paths, compare=compare)
    assert main(["report", *(["--compare"] if compare else []), *paths]) == 2
    assert "chaos: chaos report " in capsys.readouterr().err
