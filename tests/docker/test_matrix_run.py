"""`chaos matrix` over a real `chaos run` (~20 s): one minimal scenario on the reference
gateway profile, on Docker. The cell's verdict, the gateway's version from the run's own
result.json, and index.html's link to that run's report.html.

(The fast layer's loopback stack cannot serve this: `chaos run` has no command-line switch
for it, and a profile replaces the load target with a built image.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.scenarios import write_scenario

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def test_one_real_cell_on_the_reference_profile(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s", "tiny.yaml")
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "chaos.cli", "matrix", str(scenario),
                           "--gateway", "reference:default", "--id", "t", "--report-dir",
                           str(reports), "--cell-timeout", "240"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = reports / "matrix-t"
    data = json.loads((folder / "matrix.json").read_text())
    (cell,) = data["cells"]
    assert (cell["scenario"], cell["gateway"], cell["verdict"], cell["exit_code"]) == (
        "tiny", "reference:default", "pass", 0), cell
    assert (folder / cell["report"]).is_file()
    assert cell["report"].startswith("tiny/reference-default/")
    (column,) = data["columns"]
    assert column["version"] and column["version"].startswith("reference "), column
    assert column["images"].get("gateway", "").startswith("gateway-chaos/"), column
    assert f'href="{cell["report"]}"' in (folder / "index.html").read_text()
