"""Inputs built to exhaust the loader: deep nesting, long dependency chains, huge files,
merge and alias bombs. Each is exit 2 with file:line, quickly, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from chaos.cli import main

ROOT = Path(__file__).resolve().parents[2]
CRASH = (ROOT / "scenarios" / "backend-crash.yaml").read_text()


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    started = time.monotonic()
    code = main(["validate", str(path)])
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) <= 1, err[:2000]
    return code, err


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_nesting_hundreds_deep_is_refused_with_a_line(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path, opening: str) -> None:
    if opening == "- ":  # block sequences: one more indent per level
        body = "".join(" " * (2 * i) + "-\n" for i in range(400))
    else:
        closing = "]" if opening == "[" else "}"
        body = opening * 1000 + "x" + closing * 1000
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ndescription:\n  " + body.replace("\n", "\n  ") + "\n")
    code, err = validate(capsys, path)
    assert code == 2
    assert err.startswith(f"{path}:"), err
    assert "nesting is too deep" in err


def _chain(length: int, cycle: bool) -> str:
    data = yaml.safe_load(CRASH)
    for i in range(length):
        deps = [f"s{i + 1}"] if i + 1 < length else (["s0"] if cycle else [])
        data["services"][f"s{i}"] = {"image": "busybox", "port": 9000, "depends_on": deps}
    return yaml.safe_dump(data, sort_keys=False)


def test_a_long_depends_on_chain_is_checked_without_recursion(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(_chain(1500, cycle=False))
    code, err = validate(capsys, path)
    assert code == 0, err
    from chaos.scenario.loader import load_scenario

    order = load_scenario(path).start_order()
    assert order.index("s1499") < order.index("s0")


def test_a_long_depends_on_cycle_is_named(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(_chain(1500, cycle=True))
    code, err = validate(capsys, path)
    assert code == 2
    assert err.startswith(f"{path}:") and "depends_on has a cycle: " in err, err[:300]


def test_files_above_the_size_cap_are_refused_up_front(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(CRASH + "#" + "x" * (2 << 20) + "\n")
    started = time.monotonic()
    code, err = validate(capsys, path)
    assert time.monotonic() - started < 1
    assert code == 2 and err.startswith(f"{path}: ") and "larger than 2 MB" in err, err


def test_a_file_just_under_the_cap_still_loads(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    path.write_text(CRASH + "#" + "x" * ((2 << 20) - len(CRASH) - 10) + "\n")
    assert validate(capsys, path)[0] == 0


def test_a_merge_bomb_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`<<: [*a, *a]` doubles at every level: PyYAML's own merge would build 2**40 keys."""
    lines = ["x0: &x0 {k: v}"]
    lines += [f"x{i}: &x{i} {{<<: [*x{i - 1}, *x{i - 1}]}}" for i in range(1, 40)]
    path = tmp_path / "merge.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, err = validate(capsys, path)
    assert code == 2 and err.startswith(f"{path}:"), err


def test_a_recursive_merge_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "self.yaml"
    path.write_text("a: &a {b: 1, <<: *a}\n")
    code, err = validate(capsys, path)
    assert code == 2 and err.startswith(f"{path}:"), err


def test_merges_keep_their_meaning(tmp_path: Path) -> None:
    """Keys written in the mapping win over merged ones; earlier merges over later."""
    from chaos.scenario.yaml_marks import load_marked

    doc = load_marked("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc: {<<: [*a, *b], x: 3}\n", "f")
    assert doc.data["c"] == {"x": 3, "y": 1, "z": 2}


def test_a_big_string_repeated_by_aliases_is_refused(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    """Few values, but each a 1 MB string: 1,000 aliases would be a 1 GB JSON body."""
    path = tmp_path / "wide.yaml"
    path.write_text(f"big: &big '{'x' * (1 << 20)}'\nmany: [{', '.join(['*big'] * 1000)}]\n")
    code, err = validate(capsys, path)
    assert code == 2 and "MB of text" in err, err
