"""An image a scenario builds from its own folder belongs to that run: labelled, then removed.

The project's own images (folders under docker/) are kept by content hash; any other
`build:` folder gives `gateway-chaos-run/<name>:<run id>`, removed at teardown, and after
a SIGKILL listed by `chaos doctor` and removed by `chaos doctor --sweep`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CHAOS = [sys.executable, "-m", "chaos.cli"]
SHORT = ["--set", "phases.0.duration=2s", "--set", "phases.1.duration=3s",
         "--set", "phases.2.duration=2s", "--set", "assertions=[]"]
RUN_LINE = re.compile(r"run (\d{8}-\d{6}-[0-9a-f]{4}) of scenario")


@pytest.fixture
def own_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """A scenario in a project of its own whose backend is built from that project's folder."""
    shutil.copytree(ROOT / "docker" / "backend", tmp_path / "MyBackend",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for module in (ROOT / "docker" / "shared").glob("*.py"):  # a copy of the reference
        shutil.copy(module, tmp_path / "MyBackend")  # backend needs its shared modules too
    scenario = tmp_path / "backend-reset.yaml"
    shutil.copy(ROOT / "scenarios" / "backend-reset.yaml", scenario)
    args = [str(scenario), *SHORT, "--set", f"services.backend.build={tmp_path / 'MyBackend'}",
            "--report-dir", str(tmp_path / "reports")]
    return tmp_path, args


def run_images(run_id: str) -> list[str]:
    labelled = docker.from_env().images.list(filters={"label": [f"gateway-chaos.run={run_id}"]})
    return [tag for image in labelled for tag in image.tags]


def test_an_image_built_for_one_run_is_removed_at_teardown(own_folder) -> None:
    folder, args = own_folder
    proc = subprocess.run([*CHAOS, "run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    run_id = RUN_LINE.search(output).group(1)  # type: ignore[union-attr]
    result = json.loads(next((folder / "reports").glob("*/result.json")).read_text())
    tag = f"gateway-chaos-run/mybackend:{run_id}"
    assert result["images"]["backend"] == tag
    assert result["images"]["gateway"].startswith("gateway-chaos/gateway:")  # kept by hash
    with pytest.raises(ImageNotFound):
        docker.from_env().images.get(tag)
    assert run_images(run_id) == []
    docker.from_env().images.get(result["images"]["gateway"])  # the project's own image stays


def test_after_a_sigkill_doctor_lists_and_sweeps_the_run_image(own_folder) -> None:
    _, args = own_folder
    proc = subprocess.Popen([*CHAOS, "run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "service backend ready" in line or "verdict" in line:
            break
    proc.kill()
    proc.communicate(timeout=30)
    output = "".join(seen)
    run_id = RUN_LINE.search(output).group(1)  # type: ignore[union-attr]
    tag = f"gateway-chaos-run/mybackend:{run_id}"
    assert run_images(run_id) == [tag], output
    listed = subprocess.run([*CHAOS, "doctor"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert f"image {tag}" in listed.stdout, listed.stdout + listed.stderr
    swept = subprocess.run([*CHAOS, "doctor", "--sweep"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert run_images(run_id) == []
