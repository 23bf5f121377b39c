"""`chaos matrix` against a stand-in `chaos run` (tests/fixtures/fake_chaos_run.py, writing
result.json files copied from real runs): cell order, resume by inputs hash, a timed-out
cell recorded as error, exit codes, matrix.json against its schema, index.html, markdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from lxml import html as lxml_html

from chaos.cli import main
from chaos.matrix import plan, store
from chaos.scenario import gateways
from tests.fixtures.scenarios import scenario_text
from tests.unit.test_report_upstream import assert_valid

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fixtures" / "fake_chaos_run.py"
PROFILE = """name: {name}
port: 8000
health: /healthz
upstream_env: UPSTREAM_URL
profile_env: GATEWAY_PROFILE
profiles: {{stock: s, hardened: h}}
version: [{name}, -v]
"""


def _scenario(name: str, action: str) -> str:
    """The minimal valid scenario, and what the stand-in run does with it."""
    return f"# fake: {action}\n" + scenario_text(name)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder: scenarios a (pass) and b (fail), gateways beta and alpha."""
    for name, action in (("b-fails", "fail"), ("a-passes", "pass")):
        (tmp_path / "scenarios").mkdir(exist_ok=True)
        (tmp_path / "scenarios" / f"{name}.yaml").write_text(_scenario(name, action))
    for name in ("beta", "alpha"):
        folder = tmp_path / "docker" / "gateways" / name
        folder.mkdir(parents=True)
        (folder / "gateway.yaml").write_text(PROFILE.format(name=name))
        (folder / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pyproject.toml").write_text("")  # the scenarios' project: builds may be here
    monkeypatch.setattr(gateways, "gateways_dir", lambda: tmp_path / "docker" / "gateways")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHAOS_MATRIX_RUN", f"{sys.executable} {FAKE}")
    monkeypatch.setenv("FAKE_CHAOS_LOG", str(tmp_path / "calls.log"))
    return tmp_path


def _calls(project: Path) -> list[list[str]]:
    log = project / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _matrix(project: Path, matrix_id: str = "t") -> store.Matrix:
    return store.load(project / "reports" / f"matrix-{matrix_id}" / "matrix.json")


def test_cells_run_row_by_row_in_a_fixed_order(project: Path) -> None:
    assert main(["matrix", "--gateway", "beta:hardened", "--gateway", "alpha:stock",
                 "--id", "t"]) == 0
    order = [(Path(c[0]).stem, c[c.index("--gateway") + 1]) for c in _calls(project)]
    assert order == [("a-passes", "beta:hardened"), ("a-passes", "alpha:stock"),
                     ("b-fails", "beta:hardened"), ("b-fails", "alpha:stock")]
    call = _calls(project)[0]
    assert "--quiet" in call
    assert call[call.index("--report-dir") + 1].endswith("matrix-t/a-passes/beta-hardened")


def test_no_gateway_means_every_profile_in_name_order(project: Path) -> None:
    """Gateways by name; each one's profiles as its gateway.yaml lists them."""
    columns = plan.gateways([], plan.discover())
    assert [c for c, _ in columns] == ["alpha:stock", "alpha:hardened", "beta:stock",
                                       "beta:hardened"]
    assert [c for c, _ in plan.gateways(["all"], plan.discover())] == [
        c for c, _ in columns]


def test_a_finished_cell_with_the_same_inputs_is_not_rerun(project: Path) -> None:
    args = ["matrix", "--gateway", "alpha:stock", "--gateway", "beta:stock", "--id", "t"]
    assert main(args) == 0
    assert len(_calls(project)) == 4
    assert main(args) == 0
    assert len(_calls(project)) == 4, "same inputs: nothing reruns"
    scenario = project / "scenarios" / "a-passes.yaml"
    scenario.write_text(scenario.read_text() + "# changed\n")
    (project / "docker" / "gateways" / "beta" / "stock.cfg").write_text("changed\n")
    assert main(args) == 0
    rerun = [(Path(c[0]).stem, c[c.index("--gateway") + 1]) for c in _calls(project)[4:]]
    assert rerun == [("a-passes", "alpha:stock"), ("a-passes", "beta:stock"),
                     ("b-fails", "beta:stock")]
    assert main([*args, "--set", "load.users=5"]) == 0
    assert len(_calls(project)) == 11, "other --set args: every cell reruns"
    assert (project / "reports" / "matrix-latest").resolve().name == "matrix-t"


def test_a_timed_out_cell_is_an_error_and_the_matrix_goes_on(project: Path) -> None:
    (project / "scenarios" / "a-passes.yaml").write_text(_scenario("a", "sleep 30"))
    started = time.monotonic()
    assert main(["matrix", "--gateway", "alpha:stock", "--cell-timeout", "1.5", "--id", "t"]) == 0
    assert time.monotonic() - started < 15
    matrix = _matrix(project)
    cell = matrix.cell("a-passes", "alpha:stock")
    assert cell is not None and cell.verdict == "error"
    assert cell.error and "timed out after 1.5s" in cell.error
    after = matrix.cell("b-fails", "alpha:stock")
    assert after is not None and after.verdict == "fail"
    # the stopped run wrote its own (interrupted) result: its teardown ran
    assert list((project / "reports" / "matrix-t" / "a-passes" / "alpha-stock").glob("*/result.json"))
    assert main(["matrix", "--gateway", "alpha:stock", "--cell-timeout", "1.5", "--id", "t"]) == 0
    assert len(_calls(project)) == 3, "an error cell is run again on resume, a finished one not"


def test_a_broken_harness_cell_makes_the_matrix_exit_3(project: Path) -> None:
    (project / "scenarios" / "a-passes.yaml").write_text(_scenario("a", "exit 3"))
    assert main(["matrix", "--gateway", "alpha:stock", "--id", "t"]) == 3
    cell = _matrix(project).cell("a-passes", "alpha:stock")
    assert cell is not None and cell.verdict == "error" and cell.exit_code == 3
    assert cell.error and "the fake harness broke" in cell.error
    assert len(_calls(project)) == 2, "the matrix went on after the broken cell"


@pytest.mark.parametrize(("argv", "words"), [
    (["--gateway", "gamma:stock"], "no gateway named 'gamma'"),
    (["--gateway", "alpha:tuned"], "alpha has no profile 'tuned'"),
    (["--gateway", "alpha"], "expected NAME:PROFILE"),
    (["nope", "--gateway", "alpha:stock"], "no such scenario file or library name 'nope'"),
    (["--cell-timeout", "0"], "--cell-timeout must be > 0"),
])
def test_bad_input_is_exit_2_naming_it(project: Path, capsys: pytest.CaptureFixture[str],
                                       argv: list[str], words: str) -> None:
    assert main(["matrix", *argv]) == 2
    assert words in capsys.readouterr().err
    assert _calls(project) == []


def test_a_cell_that_cannot_run_is_refused_before_anything_starts(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each cell's scenario is read as its run will read it, profile and --set included."""
    assert main(["matrix", "--gateway", "alpha:stock", "--set", "load.users=many"]) == 2
    err = capsys.readouterr().err
    assert "--set load.users" in err and "(cell a-passes on alpha:stock: " in err
    assert "2 of 2 cells cannot run" in err
    broken = project / "scenarios" / "b-fails.yaml"
    broken.write_text(broken.read_text().replace('env: {UPSTREAM_URL: "${proxy.backend}"}', ""))
    assert main(["matrix", "--gateway", "alpha:stock"]) == 2
    err = capsys.readouterr().err
    assert "must say where its upstream is" in err and "alpha:stock: " in err
    assert "scenarios/b-fails.yaml)" in err
    assert _calls(project) == []


def test_matrix_json_holds_the_cells_and_matches_its_schema(project: Path) -> None:
    assert main(["matrix", "--gateway", "alpha:stock", "--gateway", "beta:hardened",
                 "--id", "t"]) == 0
    data = json.loads((project / "reports" / "matrix-t" / "matrix.json").read_text())
    schema = json.loads((ROOT / "schemas" / "matrix.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert not errors, errors[:3]
    failed = next(c for c in data["cells"] if c["scenario"] == "b-fails")
    assert failed["verdict"] == "fail" and failed["exit_code"] == 1 and failed["score"] == 56
    first = failed["first_failure"]
    assert (first["phase"], first["kind"], first["observed"], first["bound"]) == (
        "fault", "resets", "77", "== 0")
    assert "clients saw a TCP reset" in first["message"]
    report = project / "reports" / "matrix-t" / failed["report"]
    assert not Path(failed["report"]).is_absolute() and report.name == "report.html"
    assert report.exists()
    alpha = next(c for c in data["columns"] if c["gateway"] == "alpha:stock")
    assert alpha["version"] == "alpha 9.9.9 (stock)"
    assert (alpha["passed"], alpha["failed"], alpha["score"], alpha["scored_cells"]) == (
        1, 1, 78.0, 2)
    assert alpha["images"]["toxiproxy"].startswith("gateway-chaos/toxiproxy:")
    assert data["score_definition"] == store.SCORE_DEFINITION


def test_published_schema_is_generated_from_the_models() -> None:
    assert (ROOT / "schemas" / "matrix.schema.json").read_text() == store.schema_text(), (
        "stale: `.venv/bin/python -m chaos.matrix.store > schemas/matrix.schema.json`")


def test_index_html_is_a_grid_with_words_links_versions_and_scores(project: Path) -> None:
    assert main(["matrix", "--gateway", "alpha:stock", "--gateway", "beta:hardened",
                 "--id", "t"]) == 0
    folder = project / "reports" / "matrix-t"
    text = (folder / "index.html").read_text()
    assert_valid(text)
    page = lxml_html.fromstring(text)
    heads = [th.text_content().split()[0] for th in page.xpath('//table[@id="matrix"]/thead//th')]
    assert heads == ["Scenario", "alpha:stock", "beta:hardened"]
    header = page.xpath('//th[@data-gateway="alpha:stock"]')[0].text_content()
    assert "alpha 9.9.9 (stock)" in header and "score 78.0" in header and "2 cells" in header
    rows = page.xpath('//table[@id="matrix"]/tbody/tr')
    assert [r.xpath("./th")[0].text_content() for r in rows] == ["a-passes", "b-fails"]
    for row, word in zip(rows, ["PASS", "FAIL"], strict=True):
        for cell in row.xpath("./td"):
            assert cell.xpath('.//span[contains(@class,"word")]')[0].text_content() == word
            href = cell.xpath(".//a/@href")[0]
            assert not href.startswith("/") and (folder / href).is_file()
    why = rows[1].xpath('./td//span[@class="why"]')[0].text_content()
    assert why.startswith("fault resets: 77 (bound == 0): 77 of 82")
    assert store.SCORE_DEFINITION in page.text_content()
    assert "harness" in page.xpath("//header")[0].text_content()


def test_markdown_prints_the_scorecard(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--gateway", "alpha:stock", "--gateway", "beta:hardened",
                 "--id", "t"]) == 0
    capsys.readouterr()
    assert main(["matrix", "--markdown", "t"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| Scenario | `alpha:stock` | `beta:hardened` |"
    assert out[2] == "| `a-passes` | **PASS** | **PASS** |"
    assert out[3].startswith("| `b-fails` | **FAIL**: fault resets: 77 (bound == 0)")
    assert out[4] == "| resilience score | 78.0 (2 cells) | 78.0 (2 cells) |"
    assert "- `alpha:stock`: alpha 9.9.9 (stock)" in out
    assert any(line.startswith("Matrix `t`, 20") for line in out)
    assert main(["matrix", "--markdown", "reports/matrix-latest/matrix.json"]) == 0
    assert main(["matrix", "--markdown", "missing"]) == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_cell_and_leaves_matrix_json_whole(project: Path,
                                                             signum: signal.Signals) -> None:
    """SIGTERM, or Ctrl-C (SIGINT): the running cell is stopped with SIGTERM, its run writes
    its own interrupted result (its teardown), the matrix records it and exits 130."""
    (project / "scenarios" / "b-fails.yaml").write_text(_scenario("b", "sleep 30"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a fresh process: the repository's own profiles (reference:default) are the columns
    process = subprocess.Popen([sys.executable, "-m", "chaos.cli", "matrix", "--gateway",
                                "reference:default", "--id", "t"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(_calls(project)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signum)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert "resume with --id t" in err
    matrix = _matrix(project)
    kept = matrix.cell("a-passes", "reference:default")
    stopped = matrix.cell("b-fails", "reference:default")
    assert kept is not None and kept.verdict == "pass"
    assert stopped is not None and stopped.verdict == "error"
    assert stopped.error and stopped.error.startswith("interrupted")
    assert list((project / "reports" / "matrix-t" / "b-fails" / "reference-default").glob(
        "*/result.json"))


def test_an_llm_gateway_on_plain_http_load_is_n_a_in_words_and_never_run(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`api: llm` profiles route only the LLM APIs: a scenario whose load sends anything
    else is an n/a cell saying why (not a run failing on 404s), kept on resume, unscored;
    `chaos run --gateway` of it is exit 2 naming the request."""
    folder = project / "docker" / "gateways" / "alpha"
    (folder / "gateway.yaml").write_text(PROFILE.format(name="alpha") + "api: llm\n")
    chat = _scenario("c-chat", "pass").replace(
        "- {name: get, path: /}", "- {name: chat, method: POST, path: /v1/chat/completions}")
    (project / "scenarios" / "c-chat.yaml").write_text(chat)
    args = ["matrix", "--gateway", "alpha:stock", "--gateway", "beta:stock", "--id", "t"]
    assert main(args) == 0
    ran = {(Path(c[0]).stem, c[c.index("--gateway") + 1]) for c in _calls(project)}
    assert ("a-passes", "alpha:stock") not in ran and ("c-chat", "alpha:stock") in ran
    cell = _matrix(project).cell("a-passes", "alpha:stock")
    assert cell is not None and cell.verdict == "n/a"
    assert "alpha is an LLM gateway" in (cell.error or "") and "GET /" in (cell.error or "")
    column = next(c for c in _matrix(project).columns if c.gateway == "alpha:stock")
    assert column.scored_cells == 1 and column.errors == 0
    assert main(args) == 0 and len(_calls(project)) == len(ran), "n/a is kept on resume"
    capsys.readouterr()
    assert main(["matrix", "--markdown", "t"]) == 0
    table = capsys.readouterr().out
    assert "| `a-passes` | n/a |" in table and "- n/a: an LLM gateway" in table
    page = (project / "reports" / "matrix-t" / "index.html").read_text()
    assert 'data-verdict="n/a"' in page
    assert main(["run", "scenarios/a-passes.yaml", "--gateway", "alpha:stock"]) == 2
    assert "alpha is an LLM gateway" in capsys.readouterr().err


def test_a_tls_scenario_on_a_profile_without_tls_is_n_a_and_never_run(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22: a gateway.yaml without `tls: true` cannot serve the run's certificate, so a
    scenario with TLS is an n/a cell that says so; a profile with it runs the cell."""
    beta = project / "docker" / "gateways" / "beta" / "gateway.yaml"
    beta.write_text(PROFILE.format(name="beta") + "tls: true\n")
    tls = _scenario("d-tls", "pass").replace("  target: gateway\n", "  target: gateway\n  tls: true\n")
    (project / "scenarios" / "d-tls.yaml").write_text(tls)
    assert main(["matrix", "--gateway", "alpha:stock", "--gateway", "beta:stock", "--id", "t"]) == 0
    ran = {(Path(c[0]).stem, c[c.index("--gateway") + 1]) for c in _calls(project)}
    assert ("d-tls", "alpha:stock") not in ran and ("d-tls", "beta:stock") in ran
    assert ("a-passes", "alpha:stock") in ran  # plain scenarios run on both
    cell = _matrix(project).cell("d-tls", "alpha:stock")
    assert cell is not None and cell.verdict == "n/a"
    assert "alpha does not serve TLS" in (cell.error or "")
    assert main(["matrix", "--markdown", "t"]) == 0
    table = capsys.readouterr().out
    assert "| `d-tls` | n/a | **PASS** |" in table
    assert "- n/a (TLS scenarios): the profile has no `tls: true`" in table
    assert "an LLM gateway" not in table  # only the legend lines of the n/a kinds present
