"""The rerun command line (`chaos run …` in result.json, the report, the console) is shell-quoted
by one renderer, so that pasting it back into a shell reruns exactly that run."""

from __future__ import annotations

import importlib
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from chaos.rerun import run_command

ROOT = Path(__file__).resolve().parents[2]
SET = """load.requests[0].json.messages[0].content=it's "quoted" $HOME"""


def test_a_path_with_a_space_and_a_set_with_quotes_round_trip_through_shlex() -> None:
    line = run_command(Path("my scenarios/backend crash.yaml"), [SET, "load.users=3"],
                       build_roots=["/tmp/build root"], duration_scale=0.5, capture=True,
                       baseline="old run/result.json", tolerance=0.1)
    assert shlex.split(line) == [
        "chaos", "run", "my scenarios/backend crash.yaml", "--set", SET, "--set", "load.users=3",
        "--build-root", "/tmp/build root", "--duration-scale", "0.5", "--capture",
        "--baseline", "old run/result.json", "--tolerance", "0.1"]


def test_plain_arguments_stay_unquoted() -> None:
    assert run_command("scenarios/x.yaml", ["load.users=3"]) == \
        "chaos run scenarios/x.yaml --set load.users=3"


def test_the_pytest_plugin_writes_the_quoted_command(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.pytest_plugin import run_file

    source = ROOT / "scenarios" / "backend-crash.yaml"
    path = tmp_path / "with space" / "backend crash.yaml"
    path.parent.mkdir()
    shutil.copy(source, path)
    seen: dict[str, Any] = {}

    def fake_run(scenario: object, **kwargs: Any) -> str:
        seen.update(kwargs)
        return "result"

    # the module run_file will import (pytester runs elsewhere may have dropped it from
    # sys.modules, leaving a stale chaos.engine attribute behind)
    monkeypatch.setattr(importlib.import_module("chaos.engine"), "run_scenario", fake_run)
    run_file(path, overrides=["description=it's here"], report_dir=tmp_path / "reports")
    assert shlex.split(seen["command"]) == ["chaos", "run", str(path), "--set",
                                            "description=it's here"]
