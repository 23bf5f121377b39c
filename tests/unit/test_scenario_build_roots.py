"""`build:` folders stay inside the scenario's project, the harness's docker/ folder, or a
folder named with --build-root: a scenario file cannot build an image from any host folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main

SCENARIO = """\
name: builds
services:
  gateway:
    build: {build}
    port: 8000
load:
  target: gateway
  requests: [{{name: get, path: /}}]
phases:
  - {{name: only, duration: 1s}}
"""


@pytest.fixture(autouse=True)
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("run_scenario was called: the build folder was not refused")

    monkeypatch.setattr("chaos.engine.run_scenario", forbidden)


def write(folder: Path, build: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "s.yaml"
    path.write_text(SCENARIO.format(build=build), encoding="utf-8")
    return path


def refused(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> str:
    for command in ("validate", "run"):
        extra = ["--report-dir", str(path.parent / "reports")] if command == "run" else []
        code = main([command, str(path), *args, *extra])
        err = capsys.readouterr().err
        assert code == 2, (command, err)
        assert err.startswith(f"{path}:4: services.gateway.build: build folder "), err
        assert "outside the allowed folders" in err and "--build-root" in err, err
    return err


@pytest.mark.parametrize("build", ["../../etc", "/", "/etc", "docker/../../../tmp"])
def test_host_folders_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  build: str) -> None:
    err = refused(capsys, write(tmp_path / "proj", build))
    assert str(tmp_path / "proj") in err  # the allowed roots are named


def test_an_absolute_folder_elsewhere_needs_build_root(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "app").mkdir(parents=True)
    path = write(tmp_path / "proj", str(elsewhere / "app"))
    refused(capsys, path)
    assert main(["validate", str(path), "--build-root", str(elsewhere)]) == 0
    assert main(["validate", str(path), "--build-root", str(tmp_path / "proj"),
                 "--build-root", str(elsewhere)]) == 0


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "app").symlink_to(tmp_path / "secret")
    refused(capsys, write(tmp_path / "proj", str(tmp_path / "proj" / "app")))


def test_the_project_root_is_found_above_the_scenario(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "docker" / "app").mkdir(parents=True)
    path = write(repo / "scenarios" / "deep", str(repo / "docker" / "app"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_the_harness_images_stay_usable_from_anywhere(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write(tmp_path, "docker/gateway"))]) == 0, \
        capsys.readouterr().err
